"""The forward/backward phase of one training step as SimPy processes.

Each pipeline stage (each ``(stage, DP replica)`` with ``per_device``) is a process: its
compute stream runs the stage's tasks in schedule order (:mod:`simwall.plan.schedules`);
a task takes its input (an activation from the previous model chunk, or a gradient from
the next) from a :class:`simpy.Store`, waiting until it has arrived over the network,
then occupies the stream for its compute and tensor-parallel communication time (TP
collectives sit on the critical path). Finished tasks send their output to the
neighbouring chunk as a timed transfer: a SimPy timeout that puts an :class:`Arrival`
into the receiving chunk's store. There is one store per receiving chunk, direction and
replica; every schedule consumes a chunk's inputs in micro-batch order, the order they
are produced and (all transfers of a stage taking the same time) arrive, so each store
is a FIFO queue (checked as the engine runs).

Idle time on the compute stream is split into pipeline bubble and exposed PP
communication: a wait that ends when data arrives is PP communication for the part
after the producer finished and bubble before it (both times travel in the message).
When a stream starts the last backward of a chunk (its last W pass under a schedule that
splits the backward into B and W, :mod:`simwall.plan.schedules.zero_bubble`) it
announces that gradient segment to the stage's data-parallel process
(:mod:`simwall.engine.sync`). The durations come from
:mod:`simwall.costing.stage` (pure), so the engine only schedules.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from operator import itemgetter

import simpy

from ..costing import ChunkCost, StageCost
from ..memo import memoized
from ..plan import Plan
from ..plan.schedules import tasks_for
from .trace import COMPUTE, PP, TP, Recorder

__all__ = [
    "Arrival",
    "EngineRun",
    "GradSegment",
    "InputTie",
    "Pipeline",
    "StageStats",
    "StaticPipeline",
    "run_pipeline",
    "scaled",
]


@dataclass
class StageStats:
    """What one (stage, replica) did during the step. Times in seconds."""

    stage: int
    replica: int
    compute_s: float = 0.0
    tp_s: float = 0.0
    zero3_s: float = 0.0
    pp_wait_s: float = 0.0
    bubble_s: float = 0.0
    compute_end_s: float = 0.0
    # (start, end, grad bytes) of the last backward of each chunk, in completion order.
    grad_segments: list[tuple[float, float, float]] = field(default_factory=list)
    activation_peak_bytes: float = 0.0
    activation_peak_at_s: float = 0.0
    activation_now_bytes: float = 0.0


@dataclass(frozen=True)
class Arrival:
    """One micro-batch's input reaching a chunk: when its producer finished the task that
    made it and when it arrived (seconds)."""

    micro_batch: int
    producer_end_s: float
    arrived_s: float


@dataclass(frozen=True)
class GradSegment:
    """A chunk's last backward on one replica, announced when it starts: it produces
    ``grad_bytes`` of gradients evenly from ``start_s`` to ``end_s``."""

    replica: int
    start_s: float
    end_s: float
    grad_bytes: float


@dataclass
class EngineRun:
    """Raw output of :func:`run_pipeline`."""

    stats: dict[tuple[int, int], StageStats]
    trace: list[dict]
    events: int


def scaled(sc: StageCost, speed: float) -> StageCost:
    """``sc`` with its compute slowed by ``speed`` (< 1 is slower); comm unchanged."""
    if speed == 1.0:
        return sc
    chunks = tuple(replace(c, fwd_compute_s=c.fwd_compute_s / speed,
                           bwd_compute_s=c.bwd_compute_s / speed,
                           bwd_weight_s=c.bwd_weight_s / speed) for c in sc.chunks)
    return replace(sc, chunks=chunks, optimizer_s=sc.optimizer_s / speed)


class Pipeline:
    """The compute streams of one step, started as processes in ``env``.

    ``costs[(stage, replica)]`` gives each stream's durations. ``grads[stage]``, when
    given, receives a :class:`GradSegment` as each last backward of a chunk starts.
    ``events`` counts the engine's scheduling events (tasks, transfers, waits), as
    reported in :attr:`StepResult.engine`.
    """

    def __init__(self, env: simpy.Environment, plan: Plan,
                 costs: dict[tuple[int, int], StageCost], replicas: int, recorder: Recorder,
                 grads: dict[int, simpy.Store] | None = None, network=None,
                 classes: tuple[tuple[int, ...], ...] | None = None) -> None:
        self.env = env
        # Per-device runs: sends run as flows on this shared network
        # (:class:`simwall.engine.network.EngineNetwork`) instead of timed waits.
        self.network = network
        # Classes of DP replicas simulated once each (simulated replica k stands for the
        # replicas classes[k], ``replicas`` of them): each send puts every member's flows
        # on the network (:meth:`simwall.engine.network.EngineNetwork.run_class`), and
        # every engine event counts once per member.
        self.classes = classes
        self.weights = [1] * replicas if classes is None else [len(c) for c in classes]
        self.plan = plan
        self.costs = costs
        self.replicas = replicas
        self.recorder = recorder
        self.grads = grads
        self.events = 0
        self.stats: dict[tuple[int, int], StageStats] = {}
        # Inputs per (replica, 'A' activations | 'G' gradients, receiving global chunk).
        self.inbox: dict[tuple[int, str, int], simpy.Store] = {}
        for replica in range(replicas):
            for g in range(plan.chunks):
                if g > 0:
                    self.inbox[(replica, "A", g)] = simpy.Store(env)
                if g < plan.chunks - 1:
                    self.inbox[(replica, "G", g)] = simpy.Store(env)
        self.processes: dict[tuple[int, int], simpy.Process] = {}
        for replica in range(replicas):
            for stage in range(plan.pp):
                self.processes[(stage, replica)] = env.process(self._stream(stage, replica))

    def stalled(self) -> list[tuple[int, int]]:
        """Streams that never finished (a schedule bug: some input never came)."""
        return [k for k, p in self.processes.items() if p.is_alive]

    def _send(self, inbox: simpy.Store, mb: int, duration_s: float, stage: int,
              replica: int, what: str) -> None:
        """Send ``mb``'s output (``what``: 'act' or 'grad') to ``inbox``: it arrives
        ``duration_s`` from now, or, with a shared network, when its flows are through."""
        env = self.env
        producer_end = env.now
        if self.network is not None:
            transfers = self.costs[(stage, replica)].transfers
            parts = transfers.pp_fwd if what == "act" else transfers.pp_bwd
            if self.classes is not None:
                members = self.classes[replica]
                per_member = self.network.class_steps(parts, members)
                if per_member[0]:
                    self.events += len(members)
                    env.process(self._class_send(inbox, mb, per_member, members, stage,
                                                 what))
                    return
                inbox.put(Arrival(mb, producer_end, env.now))
                return
            steps = self.network.steps(parts, replica)
            if steps:
                self.events += 1
                env.process(self._flow_send(inbox, mb, steps, stage, replica, what))
                return
            duration_s = 0.0
        if duration_s <= 0:
            inbox.put(Arrival(mb, producer_end, env.now))
            return
        if self.recorder.enabled:
            self.recorder.span(f"send {what} {mb}", env.now, duration_s, stage, replica, PP,
                               "pp")
        self.events += 1
        transfer = env.timeout(duration_s)
        transfer.callbacks.append(
            lambda _ev: inbox.put(Arrival(mb, producer_end, env.now)))

    def _flow_send(self, inbox: simpy.Store, mb: int, steps, stage: int, replica: int,
                   what: str):
        """A send as flows on the shared network; the message arrives when they are."""
        env = self.env
        start = env.now
        yield from self.network.run(steps, ("pp", stage, what, mb))
        self.recorder.span(f"send {what} {mb}", start, env.now - start, stage, replica, PP,
                           "pp")
        inbox.put(Arrival(mb, start, env.now))

    def _class_send(self, inbox: simpy.Store, mb: int, per_member, members, stage: int,
                    what: str):
        """A class's send (every member's flows, :meth:`_send`); the message arrives when
        they are through. No trace: a classed run keeps none."""
        env = self.env
        start = env.now
        yield from self.network.run_class(per_member, members, ("pp", stage, what, mb))
        inbox.put(Arrival(mb, start, env.now))

    def _stream(self, stage: int, replica: int):
        env, plan, rec = self.env, self.plan, self.recorder
        sc = self.costs[(stage, replica)]
        st = StageStats(stage=stage, replica=replica)
        self.stats[(stage, replica)] = st
        v = plan.virtual_stages
        last_chunk = plan.chunks - 1
        # A split backward (W tasks: zero-bubble schedules) runs B without the weight
        # gradients, and a chunk's gradients are complete only after its last W.
        order, split, final_b = _stream_shape(plan.schedule, plan.pp, stage,
                                              plan.micro_batches, v, len(sc.chunks),
                                              plan.extra_warmup)
        grad_pass = "W" if split else "B"
        grads = self.grads[stage] if self.grads is not None else None
        tracing = rec.enabled          # skip building trace events nobody keeps
        weight = self.weights[replica]  # the replicas this stream stands for
        for pass_, mb, local in order:
            ch: ChunkCost = sc.chunks[local]
            g = ch.chunk
            if pass_ == "F":
                inbox = self.inbox[(replica, "A", g)] if g > 0 else None
            elif pass_ == "B":
                inbox = self.inbox[(replica, "G", g)] if g < last_chunk else None
            else:                       # W: its inputs are on the stage already
                inbox = None
            if inbox is not None:
                t0 = env.now
                got = inbox.get()
                if not got.triggered:
                    self.events += weight
                    yield got
                msg: Arrival = got.value
                if msg.micro_batch != mb:  # pragma: no cover - a schedule bug
                    raise RuntimeError(f"schedule {plan.schedule!r}: stage {stage} expects "
                                       f"micro-batch {mb} on chunk {g}, micro-batch "
                                       f"{msg.micro_batch} arrived first")
                wait = env.now - t0
                if wait > 0:
                    pp_part = min(wait, max(0.0, msg.arrived_s - max(t0, msg.producer_end_s)))
                    st.pp_wait_s += pp_part
                    st.bubble_s += wait - pp_part
            start = env.now
            if pass_ == "F":
                comp, tp_s, z3 = ch.fwd_compute_s, ch.fwd_tp_s, ch.zero3_fwd_exposed_s
                st.activation_now_bytes += ch.activation_bytes
                if st.activation_now_bytes > st.activation_peak_bytes:
                    st.activation_peak_bytes = st.activation_now_bytes
                    st.activation_peak_at_s = start
            elif pass_ == "B":
                comp, tp_s, z3 = ch.bwd_compute_s, ch.bwd_tp_s, ch.zero3_bwd_exposed_s
                if split:               # TP and ZeRO-3 time stay with B
                    comp -= ch.bwd_weight_s
            else:
                comp, tp_s, z3 = ch.bwd_weight_s, 0.0, 0.0
            duration = comp + tp_s + z3
            final = pass_ == grad_pass and mb == final_b[local]
            if final and grads is not None:
                grads.put(GradSegment(replica, start, start + duration, ch.grad_bytes))
            self.events += weight
            yield env.timeout(duration)
            st.compute_s += comp
            st.tp_s += tp_s
            st.zero3_s += z3
            if tracing:
                name = f"{pass_}{mb}" + (f".c{local}" if v > 1 else "")
                rec.span(name, start, comp, stage, replica, COMPUTE, "compute",
                         {"micro_batch": mb, "chunk": g, "layers": ch.layers})
                if tp_s + z3 > 0:
                    rec.span(f"{pass_}{mb} tp", start + comp, tp_s + z3, stage, replica, TP,
                             "tp")
            if pass_ == "F":
                if g < last_chunk:
                    self._send(self.inbox[(replica, "A", g + 1)], mb, sc.pp_fwd_s, stage,
                               replica, "act")
            elif pass_ == "B":
                st.activation_now_bytes -= ch.activation_bytes
                if split:
                    # B frees what only it needed; W keeps its operands until it runs.
                    st.activation_now_bytes += ch.wgrad_activation_bytes
                    if st.activation_now_bytes > st.activation_peak_bytes:
                        st.activation_peak_bytes = st.activation_now_bytes
                        st.activation_peak_at_s = env.now
                if g > 0:
                    self._send(self.inbox[(replica, "G", g - 1)], mb, sc.pp_bwd_s, stage,
                               replica, "grad")
            else:
                st.activation_now_bytes -= ch.wgrad_activation_bytes
            if final:
                st.grad_segments.append((start, env.now, ch.grad_bytes))
            if tracing:
                rec.counter("activations", env.now, stage, replica,
                            {"bytes": st.activation_now_bytes})
        st.compute_end_s = env.now


class InputTie(Exception):
    """An input reached its stream exactly when the stream asked for it, and the SimPy
    events that deliver the two were made at the same instant too: :class:`Pipeline`
    then counts a wait or not (``events``; nothing else changes) by an order
    :class:`StaticPipeline` does not follow, so it leaves such a run to
    :class:`Pipeline`."""


@memoized(maxsize=256)
def _stream_shape(schedule: str, pp: int, stage: int, m: int, v: int, chunks: int,
                  extra: int = 0
                  ) -> tuple[tuple[tuple[str, int, int], ...], bool, tuple[int, ...]]:
    """A stage's tasks in schedule order (:func:`~simwall.plan.schedules.tasks_for`),
    whether the schedule splits the backward (has W tasks), and per local chunk the
    micro-batch of its last gradient pass (W if split, else B), whose start announces the
    chunk's gradient segment. A pure function of the schedule."""
    order = tasks_for(schedule, pp, stage, m, v, extra)
    split = "W" in map(itemgetter(0), order)
    grad_pass = "W" if split else "B"
    final = [-1] * chunks
    left = chunks
    for p_, mb, c in reversed(order):
        if p_ == grad_pass and final[c] < 0:
            final[c] = mb
            left -= 1
            if not left:
                break
    return order, split, tuple(final)


class StaticPipeline:
    """The compute streams of one step when every duration is fixed in advance (no shared
    network, no trace): :class:`Pipeline`'s streams, times, statistics and event count,
    bit for bit, as one SimPy process.

    With fixed durations nothing in the pipeline phase waits on the clock, only on data:
    a task starts when its stream is free and its input has arrived (``producer end +
    send time``, the very float sums :class:`Pipeline`'s timeouts make). So the process
    carries the exact times in variables, as :mod:`.sync` does, and runs the streams as
    coroutines: each runs ahead through every task whose input has been produced and
    yields only for one that has not, and the process resumes it once its producer has
    sent it (a queue of ready streams, in the order :class:`Pipeline` starts them). The
    SimPy clock is not advanced; the DP processes and the tail that follow take the
    times from the messages, as they do after :class:`Pipeline`.

    ``events`` counts what :class:`Pipeline` schedules (tasks, timed sends, waits for an
    input that arrives after the stream is free). An input that arrives exactly when its
    stream is free counts as a wait in :class:`Pipeline` when the stream's own event (the
    end of its previous task) comes first in SimPy's queue: equal times go in the order
    the events were made (SimPy's event id), so the earlier-made event wins; both made
    at the same instant raise :class:`InputTie`.
    """

    def __init__(self, env: simpy.Environment, plan: Plan,
                 costs: dict[tuple[int, int], StageCost], replicas: int,
                 grads: dict[int, simpy.Store] | None = None) -> None:
        self.env = env
        self.plan = plan
        self.costs = costs
        self.replicas = replicas
        self.grads = grads
        self.events = 0
        self.stats: dict[tuple[int, int], StageStats] = {}
        # Per queue (:meth:`_queue`: replica, activations or gradients, receiving global
        # chunk): the messages sent and not yet taken, in order, as (micro-batch,
        # producer end, arrival, when Pipeline makes the event that delivers it); and the
        # stream waiting for the next.
        self._chunks = plan.chunks
        queues = 2 * replicas * self._chunks
        self.sent: list[deque] = [deque() for _ in range(queues)]
        self.waiting: list[tuple | None] = [None] * queues
        self.ready: deque = deque()
        self.unfinished = {(stage, replica) for replica in range(replicas)
                           for stage in range(plan.pp)}
        process = env.process(self._run())
        # Every stream ends with the one process (the DP processes wait for it).
        self.processes: dict[tuple[int, int], simpy.Process] = {
            k: process for k in sorted(self.unfinished, key=lambda k: (k[1], k[0]))}

    def stalled(self) -> list[tuple[int, int]]:
        """Streams that never finished (a schedule bug: some input never came)."""
        return sorted(self.unfinished, key=lambda k: (k[1], k[0]))

    def _queue(self, replica: int, grad: bool, chunk: int) -> int:
        """Index of the queue of ``replica``'s activations (gradients if ``grad``) into
        global chunk ``chunk``."""
        return 2 * (replica * self._chunks + chunk) + grad

    def _run(self):
        """The SimPy process: every stream run to its end (or to a missing input)."""
        ready, waiting, unfinished = self.ready, self.waiting, self.unfinished
        for replica in range(self.replicas):
            for stage in range(self.plan.pp):
                ready.append(((stage, replica), self._stream(stage, replica)))
        while ready:
            item = ready.popleft()
            key = next(item[1], None)
            if key is None:
                unfinished.discard(item[0])
            else:                     # blocked until a message reaches queue ``key``
                waiting[key] = item
        return
        yield  # pragma: no cover - a generator, for env.process

    def _stream(self, stage: int, replica: int):
        plan = self.plan
        sc = self.costs[(stage, replica)]
        st = StageStats(stage=stage, replica=replica)
        self.stats[(stage, replica)] = st
        order, split, final_mb = _stream_shape(plan.schedule, plan.pp, stage,
                                               plan.micro_batches, plan.virtual_stages,
                                               len(sc.chunks), plan.extra_warmup)
        last_chunk = plan.chunks - 1
        grads = self.grads[stage] if self.grads is not None else None
        sent, waiting, ready = self.sent, self.waiting, self.ready
        # Per pass ('F', 'B', 'W') and local chunk: pass code (0, 1, 2), input queue,
        # output queue, send time, compute / TP / ZeRO-3 time and their sum as Pipeline
        # adds them, the activation bytes the pass holds or frees, the chunk's gradient
        # bytes, the micro-batch whose pass is the chunk's last gradient pass, and the
        # input and output queues themselves.
        grad_pass = 2 if split else 1
        kinds: dict[str, list] = {"F": [], "B": [], "W": []}
        for local, ch in enumerate(sc.chunks):
            g = ch.chunk
            b_comp = ch.bwd_compute_s - ch.bwd_weight_s if split else ch.bwd_compute_s
            for pass_, kind in enumerate((
                (0, self._queue(replica, False, g) if g > 0 else None,
                 self._queue(replica, False, g + 1) if g < last_chunk else None,
                 sc.pp_fwd_s,
                 ch.fwd_compute_s, ch.fwd_tp_s, ch.zero3_fwd_exposed_s,
                 ch.fwd_compute_s + ch.fwd_tp_s + ch.zero3_fwd_exposed_s,
                 ch.activation_bytes, ch.grad_bytes),
                (1, self._queue(replica, True, g) if g < last_chunk else None,
                 self._queue(replica, True, g - 1) if g > 0 else None, sc.pp_bwd_s,
                 b_comp, ch.bwd_tp_s, ch.zero3_bwd_exposed_s,
                 b_comp + ch.bwd_tp_s + ch.zero3_bwd_exposed_s,
                 ch.activation_bytes, ch.grad_bytes),
                (2, None, None, 0.0, ch.bwd_weight_s, 0.0, 0.0,
                 ch.bwd_weight_s + 0.0 + 0.0, ch.wgrad_activation_bytes, ch.grad_bytes),
            )):
                inq, outq = kind[1], kind[2]
                kinds["FBW"[pass_]].append(
                    kind + (final_mb[local] if pass_ == grad_pass else -1,
                            None if inq is None else sent[inq],
                            None if outq is None else sent[outq]))
        wgrad = [ch.wgrad_activation_bytes for ch in sc.chunks]
        segments = st.grad_segments
        events = len(order)             # one timeout per task
        t = self.env.now        # the int 0 SimPy starts from, as Pipeline's first start
        made = None             # when Pipeline makes the timeout ending the last task
        compute_s = tp_s = zero3_s = pp_wait_s = bubble_s = 0.0
        act_now = act_peak = act_peak_at = 0.0
        for p_, mb, local in order:
            (pass_, inq, outq, send_s, comp, tp, z3, duration, act, grad_bytes,
             last_mb, inbox, outbox) = kinds[p_][local]
            if inbox is not None:
                if not inbox:
                    yield inq
                got_mb, producer_end, arrived, sent_made = inbox.popleft()
                if got_mb != mb:  # pragma: no cover - a schedule bug
                    raise RuntimeError(f"schedule {plan.schedule!r}: stage {stage} expects "
                                       f"micro-batch {mb} on queue {inq}, micro-batch "
                                       f"{got_mb} arrived first")
                if arrived > t:
                    events += 1
                    wait = arrived - t
                    # min(wait, max(0.0, arrived - max(t, producer_end))), as Pipeline
                    # has it, without the calls (builtin max/min keep the first of equals)
                    pp_part = arrived - (producer_end if producer_end > t else t)  # noqa: FURB136
                    if not pp_part > 0.0:
                        pp_part = 0.0
                    if wait < pp_part:  # noqa: PLR1730
                        pp_part = wait
                    pp_wait_s += pp_part
                    bubble_s += wait - pp_part
                    t = arrived
                elif arrived == t:
                    # Both at t: Pipeline's stream asks first (a wait of 0, one event)
                    # if its task's timeout was made before the message's event.
                    if made is None or sent_made == made:
                        raise InputTie(stage, replica, pass_, mb)
                    if made < sent_made:
                        events += 1
            made = start = t
            t = start + duration
            compute_s += comp
            tp_s += tp
            zero3_s += z3
            if pass_ == 0:
                act_now += act
                if act_now > act_peak:
                    act_peak = act_now
                    act_peak_at = start
            elif pass_ == 1:
                act_now -= act
                if split:
                    # B frees what only it needed; W keeps its operands until it runs.
                    act_now += wgrad[local]
                    if act_now > act_peak:
                        act_peak = act_now
                        act_peak_at = t
            else:
                act_now -= act
            if mb == last_mb:         # the chunk's gradients are complete after it
                if grads is not None:
                    grads.put(GradSegment(replica, start, t, grad_bytes))
                segments.append((start, t, grad_bytes))
            if outbox is not None:
                if send_s > 0:         # a timeout made now delivers it
                    events += 1
                    outbox.append((mb, t, t + send_s, t))
                else:                  # put as this task's timeout (made at start) fires
                    outbox.append((mb, t, t, start))
                blocked = waiting[outq]
                if blocked is not None:
                    ready.append(blocked)
                    waiting[outq] = None
        st.compute_s, st.tp_s, st.zero3_s = compute_s, tp_s, zero3_s
        st.pp_wait_s, st.bubble_s, st.compute_end_s = pp_wait_s, bubble_s, t
        st.activation_peak_bytes, st.activation_peak_at_s = act_peak, act_peak_at
        st.activation_now_bytes = act_now
        self.events += events


def run_pipeline(plan: Plan, costs: dict[tuple[int, int], StageCost],
                 replicas: int = 1, trace: bool = False) -> EngineRun:
    """Simulate the forward/backward phase alone for ``replicas`` DP replicas.

    Returns per-stream stats (including when each chunk's gradients were produced) and,
    with ``trace``, Chrome trace events (microseconds).
    """
    env = simpy.Environment()
    rec = Recorder(trace, replicas)
    pipe = Pipeline(env, plan, costs, replicas, rec)
    env.run()
    stalled = pipe.stalled()
    if stalled:  # pragma: no cover - a schedule bug, not user input
        raise RuntimeError(f"pipeline deadlock: streams {stalled} never got their input")
    return EngineRun(stats=pipe.stats, trace=rec.events, events=pipe.events)
