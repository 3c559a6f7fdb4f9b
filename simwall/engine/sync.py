"""The end of a step: data-parallel gradient reduction, global sync, optimizer.

Each stage's data-parallel stream is a SimPy process (:func:`dp_reduction`): it hears of
each chunk's last backward as it starts (:class:`~simwall.engine.pipeline.GradSegment`),
works out when each gradient bucket is full on every replica and reduces the buckets one
at a time in that order (one collective at a time, FIFO, as NCCL runs them on one
communicator stream), overlapping the backward; only its tail is exposed. Then
:func:`sync_tail` waits for every stage (the global gradient-norm reduction), reduces the
tied embedding gradients between the first and last stage, runs each stage's optimizer
step and, with ZeRO 1/2, the all-gather of the updated parameters.

The arithmetic of that tail is :func:`step_tail`, a pure function shared with the plan
search's analytic estimate (:func:`simwall.engine.step.estimate_step`). Exact times
travel in the messages and return values; the processes advance the SimPy clock to them
only to order the events and write the trace, so a time is never re-derived from a
clock difference (``now + (t - now)`` need not equal ``t`` in floating point).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import simpy

from ..costing import StageCost
from ..costing.contention import beside_s
from .pipeline import GradSegment
from .trace import DP, OPTIMIZER, Recorder

__all__ = [
    "OTHER_S",
    "Tail",
    "analytic_dp_exposure_s",
    "bucket_ready_times",
    "dp_reduction",
    "dp_reduction_flows",
    "step_tail",
    "sync_tail",
]

#: Fixed per-step time outside the model (data loading, logging), seconds. Zero by
#: default: the engine models only what it can cite; see docs/validation.md.
OTHER_S = 0.0


def _filled(segs: Sequence[tuple[float, float, float]],
            bucket_bytes: Sequence[float]) -> Iterator[float]:
    """Ready times of the buckets that fill within ``segs`` (sorted in completion order),
    in bucket order; stops at the first bucket the segments do not fill."""
    j, before = 0, 0.0          # segment index, bytes produced before segment j
    target = 0.0
    for size in bucket_bytes:
        target += size
        while j < len(segs) and before + segs[j][2] < target * (1 - 1e-12):
            before += segs[j][2]
            j += 1
        if j >= len(segs):
            return
        s0, s1, b = segs[j]
        frac = (target - before) / b if b > 0 else 1.0
        # min(1.0, max(0.0, frac)) without the calls (the builtins keep the first of
        # equals, and a NaN gives 0.0, as here)
        frac = frac if frac > 0.0 else 0.0  # noqa: FURB136
        yield s0 + (frac if frac < 1.0 else 1.0) * (s1 - s0)  # noqa: FURB136


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
    ready = list(_filled(sorted(segments, key=lambda s: (s[1], s[0])), bucket_bytes))
    return ready + [end] * (len(bucket_bytes) - len(ready))


def _known_ready(segments: list[tuple[float, float, float]], bucket_bytes: tuple[float, ...],
                 overlap: bool, complete: bool) -> list[float]:
    """The ready times :func:`bucket_ready_times` gives the first buckets, as far as the
    segments announced so far (a prefix in completion order) determine them; all of them
    once ``complete``."""
    if complete:
        return bucket_ready_times(segments, bucket_bytes, overlap)
    if not overlap:
        return []
    return list(_filled(sorted(segments, key=lambda s: (s[1], s[0])), bucket_bytes))


def dp_reduction(env: simpy.Environment, sc: StageCost, replicas: int, overlap: bool,
                 grads: simpy.Store, streams: Sequence[simpy.Process],
                 compute_end_s: Sequence, recorder: Recorder):
    """SimPy process: stage ``sc.stage``'s DP stream. Bucket ``i`` starts when every
    replica has it ready and bucket ``i - 1`` is done. ``grads`` delivers each chunk's last
    backward on each replica (``len(sc.chunks)`` per replica); ``streams`` are the stage's
    compute processes and ``compute_end_s()`` their end times once done. Returns when the
    stage's gradients are reduced (at least its compute end), seconds."""
    chunks = len(sc.chunks)
    segments: list[list[tuple[float, float, float]]] = [[] for _ in range(replicas)]
    known: list[list[float]] = [[] for _ in range(replicas)]
    spans: list[tuple[float, float]] = []
    done, end = 0, 0.0
    for _ in range(replicas * chunks):
        seg: GradSegment = yield grads.get()
        r = seg.replica
        segments[r].append((seg.start_s, seg.end_s, seg.grad_bytes))
        known[r] = _known_ready(segments[r], sc.bucket_bytes, overlap,
                                len(segments[r]) == chunks)
        n_known = min(map(len, known))
        tracing = recorder.enabled
        while done < n_known:
            ready = known[0][done]
            for k in known[1:]:
                ready = max(ready, k[done])
            start = max(ready, end)
            end = start + sc.bucket_s[done]
            spans.append((start, end))
            if tracing and end > start:
                recorder.span(f"dp bucket {done}", start, end - start, sc.stage, 0, DP, "dp")
            done += 1
        # The buckets known so far run back to back on one communicator (FIFO): the
        # stream is busy until ``end``, whatever arrives meanwhile.
        if end > env.now:
            yield env.timeout(end - env.now)
    yield env.all_of(streams)
    return _slowed_end_s(end, compute_end_s(), spans, sc)


def dp_reduction_flows(env: simpy.Environment, sc: StageCost, replicas: int,
                       overlap: bool, grads: simpy.Store, streams: Sequence[simpy.Process],
                       compute_end_s: Sequence, recorder: Recorder, network):
    """:func:`dp_reduction` on a shared network (per-device runs): bucket ``i`` starts
    when every replica has it ready and bucket ``i - 1`` is done, as there, but runs as
    the flows of its collective (``sc.transfers.buckets[i]``) on ``network``
    (:class:`simwall.engine.network.EngineNetwork`), so it takes what the links leave it
    while pipeline sends and other stages' buckets cross them."""
    chunks = len(sc.chunks)
    n_buckets = len(sc.bucket_bytes)
    segments: list[list[tuple[float, float, float]]] = [[] for _ in range(replicas)]
    known: list[list[float]] = [[] for _ in range(replicas)]
    spans: list[tuple[float, float]] = []
    heard, done, end = 0, 0, 0.0
    chained = False             # right after a bucket's completion, in the same step
    while done < n_buckets:
        if done < min(len(k) for k in known):
            ready = max(k[done] for k in known)
            start = max(ready, end)
            if start > env.now:
                yield env.timeout(start - env.now)
                chained = False
            if not chained:
                network.check_quiet()       # a classed run checks its order of events
            start = env.now
            yield from network.run(network.steps(sc.transfers.buckets[done]),
                                   ("dp", sc.stage, done))
            end = env.now
            spans.append((start, end))
            if end > start:
                recorder.span(f"dp bucket {done}", start, end - start, sc.stage, 0, DP, "dp")
            done += 1
            chained = True
            continue
        chained = False
        if heard == replicas * chunks:  # pragma: no cover - every bucket is known by now
            break
        seg: GradSegment = yield grads.get()
        heard += 1
        r = seg.replica
        segments[r].append((seg.start_s, seg.end_s, seg.grad_bytes))
        known[r] = _known_ready(segments[r], sc.bucket_bytes, overlap,
                                len(segments[r]) == chunks)
    yield env.all_of(streams)
    return _slowed_end_s(end, compute_end_s(), spans, sc)


def analytic_dp_exposure_s(sc: StageCost, overlap: bool, backward_s: float) -> float:
    """The DP reduction time left after the last backward (``backward_s``, one
    micro-batch, all chunks) that it overlaps: all of it without overlap, else the last
    bucket after what the others take beyond the backward or the compute they slow
    (``sc.overlap_loss``, :func:`simwall.costing.contention.beside_s`)."""
    red = sum(sc.bucket_s)
    if not overlap:
        return red
    last = sc.bucket_s[-1] if sc.bucket_s else 0.0
    return last + beside_s(red - last, backward_s, sc.overlap_loss)


def _slowed_end_s(end_s: float, compute_end_s: float, spans: Sequence[tuple[float, float]],
                  sc: StageCost) -> float:
    """When a stage's DP reduction is done: its last bucket ended at ``end_s`` and its
    compute at ``compute_end_s``, with the buckets busy over ``spans`` (start, end). The
    part of those spans under the compute slowed it by ``sc.overlap_loss`` of their
    length (:mod:`simwall.costing.contention`), and the last bucket, whose gradients the
    compute's end completes, follows the slowed compute."""
    under = 0.0
    for start, stop in spans:
        if start < compute_end_s:
            under += min(stop, compute_end_s) - start
    delay_s = sc.overlap_loss * under
    if delay_s <= 0.0:
        return max(end_s, compute_end_s)
    return max(end_s, compute_end_s + delay_s + sc.bucket_s[-1])


@dataclass(frozen=True)
class Tail:
    """The end of a step, seconds from its start."""

    dp_end_s: dict[int, float]        # per stage: its gradients reduced
    tied_end_s: float                 # tied embedding gradients reduced (0: none)
    sync_s: float                     # every stage synchronised (global gradient norm)
    slow_stage: int                   # the stage whose optimizer + all-gather ends last
    optimizer_s: float                # its optimizer step
    post_optimizer_s: float           # its ZeRO 1/2 parameter all-gather
    step_s: float                     # the step time


def step_tail(dp_end_s: Mapping[int, float], last_stage: int, tied_s: float,
              finish_s: Mapping[int, tuple[float, float]]) -> Tail:
    """The step's end from each stage's DP end (``dp_end_s``, stages 0 and ``last_stage``
    among them), the tied-embedding all-reduce between those two (``tied_s``) and each
    stage's (optimizer, post-optimizer all-gather) times ``finish_s``. Every stage
    waits for the slowest (global gradient-norm reduction) before its optimizer step."""
    tied_end = 0.0
    if last_stage > 0 and tied_s > 0:
        tied_end = max(dp_end_s[0], dp_end_s[last_stage]) + tied_s
    sync = max(max(dp_end_s.values()), tied_end)
    slow = max(finish_s, key=lambda s: (finish_s[s][0] + finish_s[s][1], -s))
    opt_s, post_s = finish_s[slow]
    return Tail(dp_end_s=dict(dp_end_s), tied_end_s=tied_end, sync_s=sync, slow_stage=slow,
                optimizer_s=opt_s, post_optimizer_s=post_s,
                step_s=sync + opt_s + post_s + OTHER_S)


def sync_tail(env: simpy.Environment, dp: Mapping[int, simpy.Process], tied_s: float,
              optimizer_s: Mapping[tuple[int, int], float], post_s: Mapping[int, float],
              replicas: int, recorder: Recorder):
    """SimPy process: after every stage's DP process (``dp[stage]``), the tied
    embedding reduction, the optimizer step of each (stage, replica) (``optimizer_s``)
    and each stage's parameter all-gather (``post_s``). Returns the :class:`Tail`."""
    done = yield env.all_of(list(dp.values()))
    dp_end = {s: done[p] for s, p in dp.items()}
    stages = sorted(dp)
    last = stages[-1]
    finish = {s: (max(optimizer_s[(s, r)] for r in range(replicas)), post_s[s])
              for s in stages}
    tail = step_tail(dp_end, last, tied_s, finish)
    if tail.tied_end_s > 0:
        start = max(dp_end[0], dp_end[last])
        if start > env.now:
            yield env.timeout(start - env.now)
        recorder.span("tied embedding all-reduce", start, tied_s, 0, 0, DP, "dp")
    if tail.sync_s > env.now:
        yield env.timeout(tail.sync_s - env.now)
    for s in stages:
        for r in range(replicas):
            recorder.span("optimizer", tail.sync_s, optimizer_s[(s, r)], s, r, OPTIMIZER,
                          "optimizer")
        if post_s[s] > 0:
            recorder.span("param all-gather", tail.sync_s + finish[s][0], post_s[s], s, 0,
                          DP, "dp")
    if tail.step_s > env.now:
        yield env.timeout(tail.step_s - env.now)
    return tail
