"""The SimPy model of one training step.

Each pipeline stage (each ``(stage, DP replica)`` with ``per_device``) is a process: its
compute stream runs the stage's tasks in schedule order (:mod:`simwall.schedules`); a
task waits until its input (an activation from the previous model chunk, or a gradient
from the next) has arrived over the network, then occupies the stream for its compute
and tensor-parallel communication time (TP collectives sit on the critical path).
Finished tasks send their output to the neighbouring stage as a timed transfer. The
data-parallel stream reduces gradient buckets as the last micro-batch's backward
produces them, overlapping it; only its tail is exposed. Then every stage waits for the
slowest (global gradient-norm reduction), runs its optimizer step and, with ZeRO 1/2,
all-gathers the updated parameters.

Idle time on the compute stream is split into pipeline bubble and exposed PP
communication: a wait that ends when data arrives is PP communication for the part
after the producer finished and bubble before it. The durations come from
:mod:`simwall.stepcost` (pure), so the engine only schedules.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import simpy

from ..plan import Plan
from ..plan.schedules import tasks_for
from ..costing import ChunkCost, StageCost

__all__ = [
    "EngineRun",
    "StageStats",
    "bucket_ready_times",
    "dp_stream",
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
                           bwd_compute_s=c.bwd_compute_s / speed) for c in sc.chunks)
    return replace(sc, chunks=chunks, optimizer_s=sc.optimizer_s / speed)


def run_pipeline(plan: Plan, costs: dict[tuple[int, int], StageCost],
                 replicas: int = 1, trace: bool = False) -> EngineRun:
    """Simulate the forward/backward phase of one step for ``replicas`` DP replicas.

    ``costs[(stage, replica)]`` gives each stream's durations. Returns per-stream stats
    (including when each chunk's gradients were produced) and, with ``trace``, Chrome
    trace events (microseconds).
    """
    env = simpy.Environment()
    pp, m, v = plan.pp, plan.micro_batches, plan.virtual_stages
    last_chunk = plan.chunks - 1
    arrivals: dict[tuple, tuple[float, float]] = {}
    waiting: dict[tuple, simpy.Event] = {}
    events = [0]
    out: list[dict] = []
    stats: dict[tuple[int, int], StageStats] = {}

    def pid(stage: int, replica: int) -> int:
        return stage * replicas + replica

    def arrive(key: tuple, producer_end: float) -> None:
        arrivals[key] = (producer_end, env.now)
        ev = waiting.pop(key, None)
        if ev is not None:
            ev.succeed()

    def send(key: tuple, duration_s: float, src: tuple[int, int], label: str) -> None:
        producer_end = env.now
        if trace and duration_s > 0:
            out.append({"name": label, "ph": "X", "ts": env.now * 1e6, "dur": duration_s * 1e6,
                        "pid": pid(*src), "tid": 3, "cat": "pp"})
        if duration_s <= 0:
            arrive(key, producer_end)
            return
        events[0] += 1
        timer = env.timeout(duration_s)
        timer.callbacks.append(lambda _ev: arrive(key, producer_end))

    def last_backward_mb(order, local: int) -> int:
        mbs = [mb for p_, mb, c in order if p_ == "B" and c == local]
        return mbs[-1]

    def stream(stage: int, replica: int):
        sc = costs[(stage, replica)]
        st = StageStats(stage=stage, replica=replica)
        stats[(stage, replica)] = st
        order = tasks_for(plan.schedule, pp, stage, m, v)
        final_b = {c: last_backward_mb(order, c) for c in range(len(sc.chunks))}
        for pass_, mb, local in order:
            ch: ChunkCost = sc.chunks[local]
            g = ch.chunk
            if pass_ == "F":
                need = ("A", replica, mb, g) if g > 0 else None
            else:
                need = ("G", replica, mb, g) if g < last_chunk else None
            if need is not None:
                t0 = env.now
                if need not in arrivals:
                    ev = env.event()
                    waiting[need] = ev
                    events[0] += 1
                    yield ev
                wait = env.now - t0
                if wait > 0:
                    producer_end, arrived = arrivals[need]
                    pp_part = min(wait, max(0.0, arrived - max(t0, producer_end)))
                    st.pp_wait_s += pp_part
                    st.bubble_s += wait - pp_part
                del arrivals[need]
            start = env.now
            if pass_ == "F":
                comp, tp_s, z3 = ch.fwd_compute_s, ch.fwd_tp_s, ch.zero3_fwd_exposed_s
                st.activation_now_bytes += ch.activation_bytes
                if st.activation_now_bytes > st.activation_peak_bytes:
                    st.activation_peak_bytes = st.activation_now_bytes
                    st.activation_peak_at_s = start
            else:
                comp, tp_s, z3 = ch.bwd_compute_s, ch.bwd_tp_s, ch.zero3_bwd_exposed_s
            duration = comp + tp_s + z3
            events[0] += 1
            yield env.timeout(duration)
            st.compute_s += comp
            st.tp_s += tp_s
            st.zero3_s += z3
            if trace:
                p_ = pid(stage, replica)
                name = f"{pass_}{mb}" + (f".c{local}" if v > 1 else "")
                out.append({"name": name, "ph": "X", "ts": start * 1e6, "dur": comp * 1e6,
                            "pid": p_, "tid": 1, "cat": "compute",
                            "args": {"micro_batch": mb, "chunk": g, "layers": ch.layers}})
                if tp_s + z3 > 0:
                    out.append({"name": f"{pass_}{mb} tp", "ph": "X",
                                "ts": (start + comp) * 1e6, "dur": (tp_s + z3) * 1e6,
                                "pid": p_, "tid": 2, "cat": "tp"})
            if pass_ == "F":
                if g < last_chunk:
                    send(("A", replica, mb, g + 1), sc.pp_fwd_s, (stage, replica),
                         f"send act {mb}")
            else:
                st.activation_now_bytes -= ch.activation_bytes
                if g > 0:
                    send(("G", replica, mb, g - 1), sc.pp_bwd_s, (stage, replica),
                         f"send grad {mb}")
                if mb == final_b[local]:
                    st.grad_segments.append((start, env.now, ch.grad_bytes))
            if trace:
                out.append({"name": "activations", "ph": "C", "ts": env.now * 1e6,
                            "pid": pid(stage, replica),
                            "args": {"bytes": st.activation_now_bytes}})
        st.compute_end_s = env.now

    for replica in range(replicas):
        for stage in range(pp):
            env.process(stream(stage, replica))
    env.run()
    if waiting:  # pragma: no cover - a schedule bug, not user input
        raise RuntimeError(f"pipeline deadlock: {len(waiting)} tasks never got their input")
    return EngineRun(stats=stats, trace=out, events=events[0])


def bucket_ready_times(segments: list[tuple[float, float, float]],
                       bucket_bytes: tuple[float, ...], overlap: bool) -> list[float]:
    """When each DP bucket is full: ``segments`` (start, end, bytes) produce gradients
    evenly over their span, in completion order; buckets fill in that order. Without
    ``overlap`` every bucket waits for the end of backward."""
    if not bucket_bytes:
        return []
    end = max((s[1] for s in segments), default=0.0)
    if not overlap:
        return [end] * len(bucket_bytes)
    segs = sorted(segments, key=lambda s: (s[1], s[0]))
    ready = []
    j, before = 0, 0.0          # segment index, bytes produced before segment j
    target = 0.0
    for size in bucket_bytes:
        target += size
        while j < len(segs) and before + segs[j][2] < target * (1 - 1e-12):
            before += segs[j][2]
            j += 1
        if j >= len(segs):
            ready.append(end)
            continue
        s0, s1, b = segs[j]
        frac = (target - before) / b if b > 0 else 1.0
        ready.append(s0 + min(1.0, max(0.0, frac)) * (s1 - s0))
    return ready


def dp_stream(ready_s: list[float], bucket_s: tuple[float, ...]) -> list[tuple[float, float]]:
    """(start, end) of each bucket's reduction on the DP stream: a bucket starts when it
    is ready and the previous one is done (one collective at a time, FIFO, as NCCL runs
    them on one communicator stream)."""
    out = []
    end = 0.0
    for ready, dur in zip(ready_s, bucket_s):
        start = max(ready, end)
        end = start + dur
        out.append((start, end))
    return out
