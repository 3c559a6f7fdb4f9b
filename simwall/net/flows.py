"""Flow-level network: max-min fair sharing of link bandwidth, static and SimPy-driven.

A *flow* is a fluid stream of bytes along a fixed route (a tuple of directed edge ids).
Concurrent flows share each edge's capacity max-min fairly (Bertsekas & Gallager,
*Data Networks*, 2nd ed., 1992, Sec. 6.5.2, progressive filling): every flow's rate is
raised together until some edge saturates; the flows on that edge are frozen and the rest
keep rising. A flow carries a ``weight`` (multiplicity): it stands for ``weight`` identical
copies on the same edges, so it loads each edge ``weight`` times its per-copy rate, and
every copy gets the same share as an enumerated flow would.

Three entry points, all deterministic (ties broken by input order, never by set order):

* :func:`maxmin_rates` -- the static allocation for a fixed set of flows;
* :func:`drain_time_s` -- when a fixed set of flows with byte counts, started together,
  all finish (rates re-solved each time one finishes);
* :class:`FlowNetwork` -- the same fluid model driven by a SimPy environment, for the
  engine: ``yield net.transfer(edges, bytes_)``.

A flow with no edges (source and destination on the same device) is limited only by
``local_bandwidth_bytes_per_s`` (default ``inf``: a local copy takes no time).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import SimwallError
from ..memo import memoized, table

if TYPE_CHECKING:  # numpy loads with the first vectorised solve (symmetric runs make none)
    import numpy as np

__all__ = ["DONE_REL", "TIE_REL", "Edge", "FlowNetwork", "drain_time_s", "maxmin_rates"]

Edge = Hashable
CapacityFn = Callable[[Edge], float]

# Two edges whose saturation levels agree to this relative tolerance saturate together, so
# symmetric flows get bit-identical rates whatever the summation order was. Chosen far
# above double rounding (~1e-16) and far below any physically meaningful difference.
TIE_REL = 1e-12
# FlowNetwork re-solves a component of more flows than this with the vectorised
# progressive filling (numpy), smaller ones with maxmin_rates. This is a round number,
# not tuned: below it, numpy's fixed cost per call outweighs the Python loops (both give
# the same allocation). drain_time_s drains a batch of at most this many flows on Python
# floats (_drain_small_s; the same doubles), so a process that only costs small batches
# never imports numpy (some 50-70 ms of a fresh process's start).
_VECTOR_FLOWS = 64
# Route objects whose edge counts FlowNetwork keeps (by id; forgotten all at once when
# full), and shared components whose rates it keeps (it stops adding when full): bounds on
# memory, not tuned (a per-device step on 8,192 GPUs meets ~100 distinct components).
_ROUTE_CACHE = 1 << 16
_COMPONENT_MEMO = 1 << 12
# A flow whose remaining bytes fall below this fraction of its size is finished: float
# round-off of rate * dt, not real data (same reasoning as TIE_REL).
DONE_REL = 1e-9


def _capacity_fn(capacity: CapacityFn | Mapping[Edge, float]) -> CapacityFn:
    if callable(capacity):
        return capacity
    return capacity.__getitem__


def _check_weight(weight: float) -> float:
    weight = float(weight)
    if not weight > 0.0 or math.isinf(weight):
        raise SimwallError(f"flow weight must be a positive finite number, got {weight}")
    return weight


def _index_edges(edges: Sequence[Edge], edge_index: dict[Edge, int], caps: list[float],
                 capacity: CapacityFn) -> dict[int, int]:
    """How often a route uses each edge, by edge index; unseen edges are numbered in
    first-seen order and their capacity appended to ``caps``."""
    counts: dict[int, int] = {}
    for e in edges:
        j = edge_index.get(e)
        if j is None:
            c = float(capacity(e))
            if not c >= 0.0:
                raise SimwallError(f"edge {e!r}: capacity must be >= 0, got {c}")
            j = edge_index[e] = len(caps)
            caps.append(c)
        counts[j] = counts.get(j, 0) + 1
    return counts


def maxmin_rates(flows: Sequence[tuple[Sequence[Edge], float]],
                 capacity: CapacityFn | Mapping[Edge, float],
                 local_bandwidth_bytes_per_s: float = math.inf) -> list[float]:
    """Max-min fair per-copy rate of each flow, in bytes/s.

    Parameters
    ----------
    flows
        ``(edges, weight)`` pairs. ``edges`` is the route (directed edge ids; an edge
        listed twice is loaded twice); ``weight`` (> 0) is how many identical copies of
        this flow run.
    capacity
        ``edge -> bytes/s``, a function or a mapping.
    local_bandwidth_bytes_per_s
        Rate given to a flow with no edges.

    Returns
    -------
    One rate per flow, per copy, in input order. Edge ``e`` carries
    ``sum(weight * count_on_e * rate)`` <= ``capacity(e)``.

    Raises
    ------
    SimwallError
        On a non-positive weight or a negative capacity.

    Examples
    --------
    >>> maxmin_rates([(("a",), 1.0), (("a", "b"), 1.0), (("b",), 1.0)], {"a": 1.0, "b": 2.0})
    [0.5, 0.5, 1.5]
    """
    cap = _capacity_fn(capacity)
    n = len(flows)
    rates = [math.inf] * n
    # Edge bookkeeping in first-seen order: index -> capacity, frozen load, unfrozen demand.
    edge_index: dict[Edge, int] = {}
    edge_cap: list[float] = []
    frozen_load: list[float] = []
    demand: list[float] = []          # sum of weight * count over unfrozen flows
    edge_flows: list[list[int]] = []
    flow_edges: list[list[tuple[int, int]]] = []   # (edge index, count) per flow
    weights = [0.0] * n
    for i, (edges, weight) in enumerate(flows):
        w = _check_weight(weight)
        weights[i] = w
        counts = _index_edges(edges, edge_index, edge_cap, cap)
        for _ in range(len(edge_cap) - len(demand)):
            frozen_load.append(0.0)
            demand.append(0.0)
            edge_flows.append([])
        pairs = list(counts.items())
        flow_edges.append(pairs)
        if not pairs:
            rates[i] = float(local_bandwidth_bytes_per_s)
        for j, k in pairs:
            demand[j] += w * k
            edge_flows[j].append(i)

    def level(j: int) -> float:
        # The common per-copy rate at which edge j would saturate.
        return max(edge_cap[j] - frozen_load[j], 0.0) / demand[j]

    # Saturation levels only rise as flows freeze (a frozen flow was at a level <= this
    # edge's), so a lazy min-heap with stale entries skipped is exact.
    heap = [(level(j), j) for j in range(len(edge_cap)) if demand[j] > 0.0]
    heapq.heapify(heap)
    frozen = [not fe for fe in flow_edges]
    saturated = [False] * len(edge_cap)
    while heap:
        t_star, j0 = heapq.heappop(heap)
        if saturated[j0] or demand[j0] <= 0.0 or level(j0) != t_star:
            continue
        if math.isinf(t_star):
            break                                   # only unbounded edges remain
        group = [j0]
        while heap and heap[0][0] <= t_star * (1.0 + TIE_REL):
            _, j = heapq.heappop(heap)
            if not saturated[j] and demand[j] > 0.0 and level(j) <= t_star * (1.0 + TIE_REL):
                group.append(j)
        touched: list[int] = []
        for j in group:
            saturated[j] = True
            for i in edge_flows[j]:
                if frozen[i]:
                    continue
                frozen[i] = True
                rates[i] = t_star
                for jj, k in flow_edges[i]:
                    frozen_load[jj] += weights[i] * k * t_star
                    demand[jj] -= weights[i] * k
                    touched.append(jj)
        for jj in touched:
            if not saturated[jj]:
                if demand[jj] <= 1e-300:
                    demand[jj] = 0.0
                else:
                    heapq.heappush(heap, (level(jj), jj))
    return rates


def drain_time_s(flows: Sequence[tuple[Sequence[Edge], float, float]],
                 capacity: CapacityFn | Mapping[Edge, float],
                 local_bandwidth_bytes_per_s: float = math.inf) -> float:
    """Seconds until every flow of a batch started together has finished
    (:func:`_drain_fresh_s`), memoised on the batch's shape.

    The drain sees only the shape: the capacities of the edges numbered in first-use
    order, and per flow (with bytes) its size, weight and edge numbers with counts.
    Batches of the same shape (translated groups: every pipeline pair, every DP group of
    a per-device costing) drain in the same time, bit for bit, so the drain runs once
    per shape, on the shape itself (edge numbers as edges: the same incidence, the same
    arithmetic)."""
    cap_of = _capacity_fn(capacity)
    edge_index: dict[Edge, int] = {}
    caps: list[float] = []
    shape: list[tuple[float, float, tuple]] = []
    for edges, bytes_, weight in flows:
        bytes_ = float(bytes_)
        if not bytes_ > 0.0:
            continue
        weight = _check_weight(weight)
        counts = _index_edges(edges, edge_index, caps, cap_of)
        shape.append((bytes_, weight, tuple(counts.items())))
    if not shape:
        return 0.0
    return _drain_shape_s(tuple(caps), tuple(shape), float(local_bandwidth_bytes_per_s))


@memoized(maxsize=4096)
def _drain_shape_s(caps: tuple[float, ...], shape: tuple[tuple[float, float, tuple], ...],
                   local_bandwidth_bytes_per_s: float) -> float:
    """:func:`_drain_fresh_s` of a batch given by its shape (:func:`drain_time_s`): each
    route rebuilt from its edge numbers in first-use order, capacities by number."""
    flows = [(tuple(j for j, k in pairs for _ in range(k)), bytes_, weight)
             for bytes_, weight, pairs in shape]
    return _drain_fresh_s(flows, caps.__getitem__, local_bandwidth_bytes_per_s)


def _drain_fresh_s(flows: Sequence[tuple[Sequence[Edge], float, float]],
                   capacity: CapacityFn | Mapping[Edge, float],
                   local_bandwidth_bytes_per_s: float = math.inf) -> float:
    """Seconds until every flow of a batch started together has finished.

    ``flows`` are ``(edges, bytes_, weight)``. Rates are max-min fair and re-solved each
    time a flow finishes, so the survivors speed up (the fluid model of FlowNetwork with
    all arrivals at time 0). Returns ``inf`` if some flow with bytes gets rate 0.

    The same progressive filling as :func:`maxmin_rates`, on arrays: the flow/edge
    incidence is built once for the batch and each re-solve is a few vectorised passes
    (one per saturation level). tests/test_network.py checks it against the plain
    statement: :func:`maxmin_rates` re-solved at each finish. A batch of at most
    :data:`_VECTOR_FLOWS` flows (every symmetric run's) is drained by
    :func:`_drain_small_s`, the same passes on Python floats, so numpy is not imported.
    """
    cap_of = _capacity_fn(capacity)
    edge_index: dict[Edge, int] = {}
    caps: list[float] = []
    inc_flow: list[int] = []
    inc_edge: list[int] = []
    inc_count: list[float] = []
    sizes: list[float] = []
    weights: list[float] = []
    for edges, bytes_, weight in flows:
        bytes_ = float(bytes_)
        if not bytes_ > 0.0:
            continue
        i = len(sizes)
        sizes.append(bytes_)
        weights.append(_check_weight(weight))
        for j, k in _index_edges(edges, edge_index, caps, cap_of).items():
            inc_flow.append(i)
            inc_edge.append(j)
            inc_count.append(float(k))
    if not sizes:
        return 0.0
    if len(sizes) <= _VECTOR_FLOWS:
        return _drain_small_s(caps, inc_flow, inc_edge, inc_count, sizes, weights,
                              float(local_bandwidth_bytes_per_s))
    import numpy as np
    n_edges = len(caps)
    cap = np.array(caps, dtype=float)
    f_idx = np.array(inc_flow, dtype=np.intp)
    e_idx = np.array(inc_edge, dtype=np.intp)
    load = np.array(inc_count, dtype=float) * np.array(weights, dtype=float)[f_idx]
    routed = np.zeros(len(sizes), dtype=bool)
    routed[f_idx] = True
    size = np.array(sizes, dtype=float)
    remaining = size.copy()
    active = np.ones(len(sizes), dtype=bool)
    now_s = 0.0
    while active.any():
        rate = _filling_rates(active, routed, cap, f_idx, e_idx, load, n_edges,
                              float(local_bandwidth_bytes_per_s))
        # inf / 0 and inf * 0 arise for unrouted (local) flows and are masked out.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            finish = np.where(active & (rate > 0.0), remaining / rate, np.inf)
            dt = float(finish[active].min())
            if math.isinf(dt):
                return math.inf if bool((rate[active] == 0.0).any()) else now_s
            left = remaining - np.where(active & (finish > 0.0), rate, 0.0) * dt
        now_s += dt
        done = active & ((finish <= dt * (1.0 + TIE_REL)) | (left <= size * DONE_REL))
        remaining = np.where(active, left, remaining)
        active &= ~done
    return now_s


def _drain_small_s(caps: list[float], inc_flow: list[int], inc_edge: list[int],
                   inc_count: list[float], sizes: list[float], weights: list[float],
                   local_bandwidth_bytes_per_s: float) -> float:
    """:func:`drain_time_s` of a small batch, given its flow/edge incidence: the passes
    of the vectorised code (:func:`_filling_rates` included) element by element, each sum
    in the same order and each product grouped alike, so the result is the same double
    (tests/test_network.py compares the two bit for bit)."""
    n, n_edges = len(sizes), len(caps)
    inf = math.inf
    load = [k * weights[f] for k, f in zip(inc_count, inc_flow)]
    routed = [False] * n
    for f in inc_flow:
        routed[f] = True
    incidence = list(zip(inc_flow, inc_edge, load))
    remaining = list(sizes)
    active = [True] * n
    now_s = 0.0
    while any(active):
        # -- _filling_rates ------------------------------------------------------------
        rate = [local_bandwidth_bytes_per_s if a and not r else inf
                for a, r in zip(active, routed)]
        unfrozen = [a and r for a, r in zip(active, routed)]
        live = [unfrozen[f] for f in inc_flow]
        demand = [0.0] * n_edges
        for (_, e, w), lv in zip(incidence, live):
            if lv:
                demand[e] += w
        frozen_load = [0.0] * n_edges
        saturated = [False] * n_edges
        while any(unfrozen):
            open_ = [d > 0.0 and not s for d, s in zip(demand, saturated)]
            if not any(open_):
                break
            level = [max(c - fl, 0.0) / d if o else inf
                     for c, fl, d, o in zip(caps, frozen_load, demand, open_)]
            t_star = min(level)
            if math.isinf(t_star):
                break                                   # only unbounded edges remain
            bound = t_star * (1.0 + TIE_REL)
            group = [lv <= bound for lv in level]
            saturated = [s or g for s, g in zip(saturated, group)]
            hit = [False] * n
            for (f, e, _), lv in zip(incidence, live):
                if lv and group[e]:
                    hit[f] = True
            newly = [h and u for h, u in zip(hit, unfrozen)]
            for f in range(n):
                if newly[f]:
                    rate[f] = t_star
                    unfrozen[f] = False
            frozen_add = [0.0] * n_edges
            demand_sub = [0.0] * n_edges
            for i, (f, e, w) in enumerate(incidence):
                if newly[f]:
                    live[i] = False
                    frozen_add[e] += w * t_star
                    demand_sub[e] += w
            frozen_load = [a + b for a, b in zip(frozen_load, frozen_add)]
            demand = [0.0 if d - s <= 1e-300 else d - s for d, s in zip(demand, demand_sub)]
        # -- the finish of drain_time_s --------------------------------------------------
        finish = [rm / r if a and r > 0.0 else inf
                  for rm, r, a in zip(remaining, rate, active)]
        dt = min(fi for fi, a in zip(finish, active) if a)
        if math.isinf(dt):
            return inf if any(a and r == 0.0 for a, r in zip(active, rate)) else now_s
        now_s += dt
        for f in range(n):
            if active[f]:
                left = remaining[f] - (rate[f] if finish[f] > 0.0 else 0.0) * dt
                if finish[f] <= dt * (1.0 + TIE_REL) or left <= sizes[f] * DONE_REL:
                    active[f] = False
                remaining[f] = left
    return now_s


def _filling_rates(active: np.ndarray, routed: np.ndarray, cap: np.ndarray,
                   f_idx: np.ndarray, e_idx: np.ndarray, load: np.ndarray, n_edges: int,
                   local_bandwidth_bytes_per_s: float) -> np.ndarray:
    """Max-min per-copy rates of the ``active`` flows (progressive filling; ties within
    :data:`TIE_REL` saturate together, as in :func:`maxmin_rates`)."""
    import numpy as np
    rate = np.full(active.shape, np.inf)
    rate[active & ~routed] = local_bandwidth_bytes_per_s
    unfrozen = active & routed
    live = unfrozen[f_idx]
    demand = np.bincount(e_idx, weights=load * live, minlength=n_edges)
    frozen_load = np.zeros(n_edges)
    saturated = np.zeros(n_edges, dtype=bool)
    while unfrozen.any():
        open_ = (demand > 0.0) & ~saturated
        if not open_.any():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where(open_, np.maximum(cap - frozen_load, 0.0) / demand, np.inf)
        t_star = float(level.min())
        if math.isinf(t_star):
            break                                   # only unbounded edges remain
        group = level <= t_star * (1.0 + TIE_REL)
        saturated |= group
        hit = np.zeros(active.shape, dtype=bool)
        hit[f_idx[group[e_idx] & live]] = True
        newly = hit & unfrozen
        rate[newly] = t_star
        unfrozen &= ~newly
        moved = newly[f_idx]
        live &= ~moved
        frozen_load += np.bincount(e_idx, weights=load * moved * t_star, minlength=n_edges)
        demand -= np.bincount(e_idx, weights=load * moved, minlength=n_edges)
        demand[demand <= 1e-300] = 0.0
    return rate


class _Flow:
    __slots__ = ("bytes_", "cls", "done", "edges", "key", "pairs", "rate", "remaining",
                 "since", "stamp", "tag", "weight")

    def __init__(self, edges: tuple, pairs: tuple, cls: int, bytes_: float, weight: float,
                 done: Any, tag: Hashable = None) -> None:
        self.tag = tag
        self.edges = edges
        self.pairs = pairs               # (edge number, times the route uses it), first use
        self.cls = cls                   # route and weight, interned (FlowNetwork._classify)
        self.weight = weight
        self.bytes_ = bytes_
        self.remaining = bytes_          # bytes left at time ``since``
        self.since = 0.0
        self.rate = 0.0
        self.stamp = 0                   # bumped at each rate change (stale heap entries)
        self.key = -1                    # arrival number once started
        self.done = done


class _Batch:
    """One event for many flows: fires when the last of them is done.

    It stands in for the flows' own events (``flow.done``): the network calls
    :meth:`succeed` where it would succeed a flow's event, and only the flow that
    completes the batch gets a SimPy event, whose callback then succeeds ``done``. The
    events in between triggered nothing, so every event that matters is processed in the
    same order as with one event per flow (and ``env.all_of`` over them)."""

    __slots__ = ("done", "env", "left")

    def __init__(self, env: Any, left: int) -> None:
        self.env = env
        self.done = env.event()
        self.left = left

    def succeed(self) -> None:
        self.left -= 1
        if self.left == 0:
            last = self.env.event()
            last.callbacks.append(self._fire)
            last.succeed()

    def succeed_n(self, n: int) -> None:
        """:meth:`succeed` ``n`` times in a row: a bundle's flows, which finish together.
        Their arrival numbers lie in their batch's range, which no other batch's flows
        enter, so the batch fires in the same place among the others as when its flows
        are succeeded one by one in arrival order."""
        self.left -= n - 1
        self.succeed()

    def _fire(self, _ev: Any) -> None:
        self.done.succeed()


class _Tracked(_Batch):
    """A :class:`_Batch` that notes the network's flush in which its last flow finished
    (``serial``; None until then): :meth:`FlowNetwork.transfer_each`. A ``quiet`` one
    fires no event (nothing waits on it: only the first batch of a call is waited on)."""

    __slots__ = ("net", "quiet", "serial")

    def __init__(self, net: FlowNetwork, left: int, quiet: bool) -> None:
        super().__init__(net.env, left)
        self.net = net
        self.quiet = quiet
        self.serial: int | None = None

    def succeed(self) -> None:
        if self.left == 1:
            self.serial = self.net.flushes
            if self.quiet:
                self.left = 0
                return
        super().succeed()


class _Bundle:
    """Flows of one :meth:`FlowNetwork.transfer_all` batch that are copies of each other
    (its *rails*: one per group of a collective, e.g. one per NIC rail), kept as ONE
    object (``FlowNetwork(bundles=True)``) while nothing can tell them apart.

    :meth:`FlowNetwork._bundle_spec` cuts a batch into columns of rails: the same bytes
    and weight, pairwise distinct edges, routes of the same shape (edge count, use counts
    and capacities position by position), the same rate alone (the same double). A bundle
    stands for its rails, arrival numbers ``key - offs[0] + offs[i]``, with their common
    state (rate, bytes left, stamp) and one heap entry under ``key`` (rail 0's), as long
    as every re-solve gives all of them the same rate by the same arithmetic:

    * alone on its links, each rail gets its rate alone (``alone``), and keeps it while
      none of its edges changes;
    * sharing links with other bundles only rail by rail (:meth:`FlowNetwork._join`: where
      two bundles meet, rail ``i`` meets rail ``i`` at every rail, with the same others),
      each rail of a connected set of bundles is a copy of rail 0: the same flows (their
      rail ``i``) in the same arrival order on edges of the same capacities, used alike,
      and no edge of two rails. The progressive filling of the whole component
      (:func:`maxmin_rates`, :func:`_filling_rates`) then computes on each rail's edges
      the same levels by the same sums in the same order as on rail 0's (an edge's sums
      run over its own flows in arrival order; the saturation level taken each round is
      the minimum over all edges, which copies do not change), so every rail gets rail
      0's rates, bit for bit, and the network solves rail 0 only, with the solver the
      whole component would get (by its number of flows).

    Anything else (a flow that is not bundled on one of its edges, a bundle that would
    meet another out of step) splits it into its flows, with the state each would have
    had (:meth:`FlowNetwork._unbundle`); the ordinary bookkeeping goes on from there."""

    __slots__ = ("alone", "bytes_", "cls", "cols", "done", "edges", "edges0", "finish_s",
                 "key", "members", "n", "offs", "ons", "pairs", "rate", "remaining", "since",
                 "stamp", "tag", "weight")

    def __init__(self, members: list, spec: tuple, offs: tuple, done: Any,
                 tag: Hashable) -> None:
        self.members = members           # the prepared flows (edges, pairs, cls, bytes, w)
        self.offs = offs                 # their places in their batch's arrival order
        self.ons: list[dict[int, None]] = []   # per position, the bundles there (joined)
        self.n = len(members)
        # Every member's edge numbers (distinct); per position in the route, the rails'
        # edges there; the rate each member gets alone.
        self.edges, self.cols, self.alone = spec
        self.edges0, self.pairs, self.cls, self.bytes_, self.weight = members[0]  # rail 0
        self.remaining = self.bytes_
        self.since = 0.0
        self.rate = 0.0
        self.stamp = 0
        self.key = -1                    # the arrival number of its rail 0
        self.finish_s = math.inf
        self.done = done
        self.tag = tag


#: FlowNetwork's caches that ``FlowNetwork(caches=...)`` shares with the next network.
_SHARED = ("_bundle_specs", "_routes", "_route_ids", "_classes", "_batches", "_alone",
           "_edge_numbers", "_edge_of", "_edge_caps", "_component_rates", "_capacity")


class FlowNetwork:
    """The fluid max-min model driven by a SimPy environment.

    ``net.transfer(edges, bytes_)`` returns an event that fires when the bytes have
    arrived (``net.transfer_all(flows)``: one event for a batch). Rates are max-min fair
    over all active flows; they are re-solved when the active set changes, and only on
    the flows that share links with the change, directly or through other flows (the
    *component* of the change): flows in other components keep their rates, which a
    whole re-solve would give them too (max-min allocation is separable over components
    of the flow-link incidence graph). Starts and ends at one simulated instant are
    batched into one re-solve. Progress is kept lazily (bytes left at the last rate
    change), and finish times wait in a heap, so an event costs the size of its
    component, not of the whole network. A shared component's rates are memoised on its
    flows' classes (route and weight) in arrival order, which determine them: lockstep
    replicas meet the same components again and again.

    Attributes
    ----------
    edge_bytes : dict
        Bytes carried so far per edge (all copies of weighted flows counted); empty
        with ``edge_stats=False``.
    edge_busy_s : dict
        Seconds during which the edge carried a positive load (idem).
    """

    def __init__(self, env: Any, capacity: CapacityFn | Mapping[Edge, float],
                 local_bandwidth_bytes_per_s: float = math.inf,
                 edge_stats: bool = True, bundles: bool = False,
                 caches: dict | None = None) -> None:
        self.env = env
        self._edge_stats = edge_stats     # keep edge_bytes / edge_busy_s (else empty)
        # Rails of a batch that are copies of each other kept as one object (_Bundle);
        # not with edge statistics, which are settled per flow.
        self._bundles = bundles and not edge_stats
        self._bundle_specs: dict[int, tuple] = {}      # id(flows) -> (flows, spec or None)
        # Per edge of bundles: (the bundles there by key, their column: the rails' edges
        # at that position), one entry shared by all rails of the column. An edge never
        # carries a flow and a bundle.
        self._edge_bundles: dict[int, tuple[dict[int, None], tuple]] = {}
        capacity_of = _capacity_fn(capacity)
        known: dict[Edge, float] = {}

        def cached(edge: Edge) -> float:      # one look-up per edge, not per re-solve
            c = known.get(edge)
            if c is None:
                c = known[edge] = capacity_of(edge)
            return c

        self._capacity = cached
        self._local_bandwidth_bytes_per_s = float(local_bandwidth_bytes_per_s)
        self._active: dict[int, _Flow] = {}       # insertion order = arrival order
        self._next_id = 0
        self._starting: list[_Flow] = []          # started at this instant, not yet solved
        self._edge_flows: dict[int, dict[int, None]] = {}    # active flows per edge number
        self._heap: list[tuple[float, int, int]] = []        # (finish_s, key, stamp)
        self._wake_s = math.inf                   # the pending wake-up, if any
        self._version = 0
        self._flush_pending = False
        # bytes/s per edge under current rates, and since when (lazy edge statistics).
        self._edge_load: dict[Edge, float] = {}
        self._edge_since: dict[Edge, float] = {}
        self._edge_bytes: dict[Edge, float] = {}
        self._edge_busy_s: dict[Edge, float] = {}
        self.transfers_done = 0
        # Flushes run so far, and the instant of the last (FlowNetwork.settled_at).
        self.flushes = 0
        self.last_flush_s = -math.inf
        self._staged: list[tuple] = []   # transfer_each's batches until the flush
        # Called where held batches start in one flush with batches started directly
        # (transfer_all) at that instant: which came first is not known here.
        self.staged_with_others: Callable[[], None] | None = None
        # Re-solves in which one edge carried flows of two different tags (transfers
        # that share a link at the same time); only flows given a tag count.
        self.shared_resolves = 0
        # Flow classes: a route (by content) and a weight, interned to one int
        # (_classify); the rates of a shared component are a pure function of its
        # flows' classes in arrival order (the capacities being fixed), memoised on them.
        self._routes: dict[int, tuple] = {}            # id(edges) -> (edges, tuple, pairs, rid)
        self._route_ids: dict[tuple, int] = {}
        self._classes: dict[tuple[int, float], int] = {}
        self._batches: dict[int, tuple] = {}           # id(flows) -> (flows, prepared)
        self._alone: dict[int, float] = {}             # class -> rate alone on its route
        # Edges numbered in first-seen order: the bookkeeping keys on ints, not on the
        # (tuple) edge ids; capacities looked up on first use.
        self._edge_numbers: dict[Edge, int] = {}
        self._edge_of: list[Edge] = []
        self._edge_caps: dict[int, float] = {}
        self._component_rates = table(self, "component_rates")
        if caches is not None:
            # What this network works out once (route classes, edge numbers, batches
            # and their bundle specs, rates alone, component rates) kept in ``caches``
            # for the next network of the same capacities and settings: pure functions
            # of those, the same numbers whichever network worked them out.
            for name in _SHARED:
                if name in caches:
                    setattr(self, name, caches[name])
                else:
                    caches[name] = getattr(self, name)

    # -- public -------------------------------------------------------------------------
    def transfer(self, edges: Sequence[Edge], bytes_: float, weight: float = 1.0,
                 latency_s: float = 0.0, tag: Hashable = None) -> Any:
        """Event firing when ``bytes_`` (per copy) have crossed ``edges``.

        ``latency_s`` is a pure delay before the bytes start flowing (it uses no
        bandwidth); ``weight`` copies load every edge. Zero bytes: fires after the delay.
        ``tag`` names the transfer the flow belongs to (see ``shared_resolves``).
        """
        bytes_ = float(bytes_)
        if not bytes_ >= 0.0 or math.isinf(bytes_):
            raise SimwallError(f"transfer bytes must be finite and >= 0, got {bytes_}")
        if not latency_s >= 0.0:
            raise SimwallError(f"transfer latency_s must be >= 0, got {latency_s}")
        weight = _check_weight(weight)
        edges_t, pairs, cls = self._classify(edges, weight)
        flow = _Flow(edges_t, pairs, cls, bytes_, weight, self.env.event(), tag)
        if latency_s > 0.0:
            self.env.timeout(latency_s).callbacks.append(lambda _ev: self._start(flow))
        else:
            self._start(flow)
        return flow.done

    def transfer_all(self, flows: Sequence[tuple[Sequence[Edge], float, float]],
                     tag: Hashable = None) -> Any:
        """One event firing when every ``(edges, bytes_, weight)`` flow, all started now,
        has arrived (the same as ``env.all_of`` over :meth:`transfer` events, with one
        SimPy event instead of one per flow)."""
        return self._transfer(flows, tag, _Batch(self.env, len(flows)))

    def transfer_each(self, batches: Sequence[Sequence[tuple[Sequence[Edge], float, float]]],
                      order: Sequence[int], tag: Hashable = None
                      ) -> tuple[Any, Callable[[], list[list[int]]]]:
        """:meth:`transfer_all` of each of ``batches``, held until this instant's re-solve
        and then started in the order of their ``order`` numbers (of all batches so
        held at this instant; the same network, bit for bit, as so many calls in that
        order). Returns the event of the first batch (the others fire none) and a
        function giving the ``order`` numbers grouped by the re-solve (flush) that
        finished their batch, unfinished ones last (one group: all finished together).
        The engine runs classes of identical DP replicas' sends so
        (simwall.engine.network)."""
        made = [_Tracked(self, len(flows), i > 0) for i, flows in enumerate(batches)]
        staged = self._staged
        for key, flows, batch in zip(order, batches, made):
            staged.append((key, len(staged), flows, tag, batch))
        self._request_flush()

        def groups() -> list[list[int]]:
            by: dict[Any, list[int]] = {}
            for key, b in zip(order, made):
                by.setdefault(math.inf if b.serial is None else b.serial, []).append(key)
            return [by[k] for k in sorted(by)]

        return made[0].done, groups

    def _transfer(self, flows: Sequence[tuple[Sequence[Edge], float, float]],
                  tag: Hashable, batch: _Batch) -> Any:
        """:meth:`transfer_all` of ``flows`` under ``batch``."""
        if not flows:
            batch.done.succeed()
            return batch.done
        starting = self._starting
        before = len(starting)
        prepared = self._prepared(flows)
        if self._bundles:
            spec = self._bundle_spec(flows, prepared)
            if spec is not None:
                size, zero, columns = spec
                for _ in range(zero):    # as below: done at once, no arrival number
                    batch.succeed()
                    self.transfers_done += 1
                starting.append((size, [_Bundle(members, col, offs, batch, tag)
                                        for members, col, offs in columns]))
                self._request_flush()
                return batch.done
        for edges_t, pairs, cls, bytes_, weight in prepared:
            if bytes_ == 0.0:            # as _start: done at once (it cannot complete a
                batch.succeed()          # batch that has flows with bytes: no event)
                self.transfers_done += 1
            else:
                starting.append(_Flow(edges_t, pairs, cls, bytes_, weight, batch, tag))
        if len(starting) > before:
            self._request_flush()
        return batch.done

    def _prepared(self, flows: Sequence[tuple[Sequence[Edge], float, float]]
                  ) -> list[tuple[tuple, tuple, int, float, float]]:
        """``flows`` checked and classified (:meth:`_classify`), worked out once per
        tuple object (the engine passes the same memoised batches again and again)."""
        hit = self._batches.get(id(flows))
        if hit is not None and hit[0] is flows:
            return hit[1]
        prepared = []
        for edges, bytes_, weight in flows:
            bytes_ = float(bytes_)
            if not bytes_ >= 0.0 or math.isinf(bytes_):
                raise SimwallError(f"transfer bytes must be finite and >= 0, got {bytes_}")
            weight = _check_weight(weight)
            edges_t, pairs, cls = self._classify(edges, weight)
            prepared.append((edges_t, pairs, cls, bytes_, weight))
        if type(flows) is tuple:
            if len(self._batches) >= _ROUTE_CACHE:
                self._batches.clear()
            self._batches[id(flows)] = (flows, prepared)
        return prepared

    def _bundle_spec(self, flows: Sequence, prepared: list) -> tuple | None:
        """How the ``prepared`` batch runs as :class:`_Bundle` objects, or None.

        Its flows with bytes (in order; arrival numbers go to these only) are cut into
        ``n >= 2`` consecutive blocks of ``m`` (the largest ``n`` that works: one block
        per group of a collective, one per rail): column ``j`` holds flow ``j`` of every
        block. Each column must be rails that are copies of each other: the same bytes
        and weight, pairwise distinct edges, the same number of edges, each used as often
        and of the same capacity position by position (first use), each flow alone on
        its route at the same rate (0 < rate < inf, the arithmetic of
        :meth:`_rate_alone`). Returns ``(flows with bytes, flows without, columns)``, a
        column as ``(members, (edge numbers, per position the rails' edges, rate alone),
        offsets in arrival order)``. Once per batch tuple object."""
        hit = self._bundle_specs.get(id(flows))
        if hit is not None and hit[0] is flows:
            return hit[1]
        spec = None
        live = [p for p in prepared if p[3] != 0.0]
        size = len(live)
        for n in range(size, 1, -1):
            if size % n:
                continue
            m = size // n
            columns = []
            for j in range(m):
                members = live[j::m]
                col = self._column(members)
                if col is None:
                    break
                columns.append((members, col, tuple(range(j, size, m))))
            else:
                spec = (size, len(prepared) - size, columns)
                break
        if type(flows) is tuple:
            if len(self._bundle_specs) >= _ROUTE_CACHE:
                self._bundle_specs.clear()
            self._bundle_specs[id(flows)] = (flows, spec)
        return spec

    def _column(self, members: list) -> tuple | None:
        """``(edge numbers, per position the rails' edges, rate alone)`` if
        ``members`` (prepared flows) are rails that are copies of each other
        (:meth:`_bundle_spec`), else None."""
        cap = self._cap
        _e0, pairs0, _c0, first, weight0 = members[0]
        if not (first > 0.0 and pairs0):
            return None
        shape0 = [(k, cap(e)) for e, k in pairs0]
        seen: dict[int, None] = {}
        rate = None
        for _edges, pairs, _cls, bytes_, weight in members:
            if bytes_ != first or weight != weight0 or \
                    [(k, cap(e)) for e, k in pairs] != shape0:
                return None
            r = self._rate_alone(pairs, weight)
            if rate is None:
                rate = r
            elif r != rate:
                return None
            for e, _k in pairs:
                if e in seen:
                    return None
                seen[e] = None
        if not 0.0 < rate < math.inf:
            return None
        cols = tuple(tuple(m[1][p][0] for m in members) for p in range(len(pairs0)))
        return (tuple(seen), cols, rate)

    def _unbundle(self, bundle: _Bundle, dirty: dict[int, None]) -> None:
        """Split ``bundle`` into its flows, each with the state it would have had:
        arrival number, start, rate, bytes left, stamp and (once rated) its heap entry
        (the bundle's own entry is its first flow's). Not yet rated (started at this
        instant): the flows are starting flows, their edges ``dirty``. Every bundle that
        shares an edge with it is split too (an edge carries flows or bundles)."""
        active, edge_flows = self._active, self._edge_flows
        work = [bundle]
        while work:
            bundle = work.pop()
            if active.get(bundle.key) is bundle:
                del active[bundle.key]
                self._leave(bundle, work)
            rated = bundle.stamp > 0
            base = bundle.key - bundle.offs[0]
            for off, (edges_t, pairs, cls, bytes_, weight) in zip(bundle.offs,
                                                                  bundle.members):
                key = base + off
                f = _Flow(edges_t, pairs, cls, bytes_, weight, bundle.done, bundle.tag)
                f.key = key
                f.since = bundle.since
                f.rate = bundle.rate
                f.remaining = bundle.remaining
                f.stamp = bundle.stamp
                active[key] = f
                for e, _k in pairs:
                    on = edge_flows.get(e)
                    if on is None:
                        on = edge_flows[e] = {}
                    on[key] = None
                    if not rated:
                        dirty[e] = None
                if rated and key != bundle.key and bundle.finish_s < math.inf:
                    heapq.heappush(self._heap, (bundle.finish_s, key, bundle.stamp))
            work = [b for b in work if active.get(b.key) is b]

    def _join(self, bundle: _Bundle) -> bool:
        """Put ``bundle`` on its edges if every other bundle there shares them with it
        rail by rail: at each position of its routes, all rails' edges are free, or they
        are exactly the column (rails' edges, rail by rail) of the bundles already there,
        which share one entry ``(bundles, column)``. Then every rail of every bundle on a
        link sees the same others at the same places (the rails stay copies) and rail 0
        tells what is on all. False (nothing done) where that does not hold."""
        edge_bundles, key = self._edge_bundles, bundle.key
        free = edge_bundles.keys().isdisjoint
        ons: list[dict[int, None]] = []
        if free(bundle.edges):
            for col in bundle.cols:
                on = {key: None}
                edge_bundles.update(dict.fromkeys(col, (on, col)))
                ons.append(on)
            bundle.ons = ons
            return True
        get = edge_bundles.get
        hits: list = []
        for col in bundle.cols:
            hit = get(col[0])
            if hit is None:
                if not free(col):
                    return False
            elif hit[1] != col:
                return False
            hits.append(hit)
        for col, hit in zip(bundle.cols, hits):
            if hit is None:
                on = {key: None}
                edge_bundles.update(dict.fromkeys(col, (on, col)))
            else:
                on = hit[0]
                on[key] = None
            ons.append(on)
        bundle.ons = ons
        return True

    def _leave(self, bundle: _Bundle, others: list[_Bundle] | None = None) -> bool:
        """Take ``bundle`` off its edges; whether other bundles are left on them (and,
        given ``others``, those bundles appended to it)."""
        edge_bundles, key = self._edge_bundles, bundle.key
        left = False
        for on, col in zip(bundle.ons, bundle.cols):
            del on[key]
            if on:
                left = True
                if others is not None:
                    active = self._active
                    others.extend(active[k] for k in on)
            else:
                for e in col:
                    del edge_bundles[e]
        return left

    def _classify(self, edges: Sequence[Edge], weight: float) -> tuple[tuple, tuple, int]:
        """``(edges, pairs, class)`` of a flow: its route as a tuple, how often it uses
        each edge (by edge number, first-use order) and the interned id of (route,
        weight). Worked out once per route object (routes are memoised tuples:
        simwall.net.collectives)."""
        info = self._routes.get(id(edges))
        if info is None or info[0] is not edges:
            edges_t = tuple(edges)
            counts: dict[int, int] = {}
            numbers, edge_of = self._edge_numbers, self._edge_of
            for e in edges_t:
                j = numbers.get(e)
                if j is None:
                    j = numbers[e] = len(edge_of)
                    edge_of.append(e)
                counts[j] = counts.get(j, 0) + 1
            rid = self._route_ids.setdefault(edges_t, len(self._route_ids))
            info = (edges, edges_t, tuple(counts.items()), rid)
            if type(edges) is tuple:     # immutable: its id names it while it is kept here
                if len(self._routes) >= _ROUTE_CACHE:
                    self._routes.clear()
                self._routes[id(edges)] = info
        cls = self._classes.setdefault((info[3], weight), len(self._classes))
        return info[1], info[2], cls

    def settled_at(self, now_s: float) -> bool:
        """Whether nothing has happened on the network at instant ``now_s`` yet: no flush
        has run at it, none is requested, and no flow is due to finish at it."""
        return (self.last_flush_s != now_s and not self._flush_pending
                and self._wake_s != now_s)

    @property
    def active_flows(self) -> int:
        return (sum(f.n if type(f) is _Bundle else 1 for f in self._active.values())
                + sum(f[0] if type(f) is tuple else 1 for f in self._starting))

    @property
    def edge_bytes(self) -> dict[Edge, float]:
        self._settle_edges(list(self._edge_load))
        return self._edge_bytes

    @property
    def edge_busy_s(self) -> dict[Edge, float]:
        self._settle_edges(list(self._edge_load))
        return self._edge_busy_s

    def busiest_edges(self, n: int = 1) -> list[tuple[Edge, float, float]]:
        """Up to ``n`` ``(edge, busy_s, bytes)`` by busy time, then bytes (then first use)."""
        busy, carried = self.edge_busy_s, self.edge_bytes
        order = sorted(enumerate(busy.items()),
                       key=lambda kv: (-kv[1][1], -carried.get(kv[1][0], 0.0), kv[0]))
        return [(e, b, carried.get(e, 0.0)) for _, (e, b) in order[:n]]

    # -- fluid bookkeeping ----------------------------------------------------------------
    def _start(self, flow: _Flow) -> None:
        if flow.bytes_ == 0.0:
            flow.done.succeed()
            self.transfers_done += 1
            return
        self._starting.append(flow)
        self._request_flush()

    def _request_flush(self) -> None:
        # Batch all changes at this instant into one re-solve: the zero-delay event runs
        # after the events already queued for now.
        if not self._flush_pending:
            self._flush_pending = True
            self.env.timeout(0.0).callbacks.append(self._flush)

    def _settle_edges(self, edges: Sequence[Edge]) -> None:
        """Edge statistics brought up to ``env.now`` at their current loads."""
        now_s = float(self.env.now)
        for e in edges:
            load = self._edge_load.get(e, 0.0)
            dt = now_s - self._edge_since.get(e, now_s)
            self._edge_since[e] = now_s
            if load > 0.0 and dt > 0.0:
                self._edge_bytes[e] = self._edge_bytes.get(e, 0.0) + load * dt
                self._edge_busy_s[e] = self._edge_busy_s.get(e, 0.0) + dt

    def _flush(self, _ev: Any = None) -> None:
        if self._staged:                 # transfer_each's batches, in their order
            if self._starting and self.staged_with_others is not None:
                self.staged_with_others()    # started now too, in an order not known
            staged, self._staged = self._staged, []
            staged.sort(key=lambda item: (item[0], item[1]))
            for _key, _n, flows, tag, batch in staged:
                self._transfer(flows, tag, batch)
        self._flush_pending = False
        self.flushes += 1
        self.last_flush_s = self.env.now
        now_s = float(self.env.now)
        dirty: dict[int, None] = {}                        # edge numbers
        # Finished: the predicted finish is within what env.now can resolve (else a
        # wake-up at now + tiny == now would never make progress); a flow whose bytes
        # left are round-off was predicted to finish now when its rate was set.
        horizon_s = abs(now_s) * TIE_REL
        finished: list = []
        heap = self._heap
        active = self._active
        while heap and heap[0][0] <= now_s + horizon_s:
            _, key, stamp = heapq.heappop(heap)
            flow = active.get(key)
            if flow is None or flow.stamp != stamp:
                continue                                   # stale entry
            finished.append(flow)
        finished.sort(key=lambda f: f.key)
        edge_flows, edge_bundles = self._edge_flows, self._edge_bundles
        stats = self._edge_stats
        done = 0
        for flow in finished:
            key = flow.key
            del active[key]
            if type(flow) is _Bundle:
                if self._leave(flow):
                    for e, _k in flow.pairs:         # rail 0 stands for all rails
                        if e in edge_bundles:
                            dirty[e] = None
                done += flow.n
                continue
            done += 1
            for e, _k in flow.pairs:
                on = edge_flows[e]
                del on[key]
                if on:
                    dirty[e] = None
                else:                    # no flow left to re-solve (its statistics
                    del edge_flows[e]    # still need settling)
                    if stats:
                        dirty[e] = None
            flow.remaining = 0.0
        starting, self._starting = self._starting, []
        key = self._next_id
        for flow in starting:
            if type(flow) is tuple:      # a batch as bundles: (flows, the bundles)
                for b in flow[1]:
                    b.key = key + b.offs[0]
                    b.since = now_s
                    if edge_flows.keys().isdisjoint(b.edges) and self._join(b):
                        active[b.key] = b
                        for e, _k in b.pairs:        # rail 0 stands for all rails
                            dirty[e] = None
                        continue
                    self._unbundle(b, dirty)
                    for off in b.offs:
                        self._touch(active[key + off], dirty)
                key += flow[0]
                continue
            flow.key = key
            flow.since = now_s
            active[key] = flow
            for e, _k in flow.pairs:
                on = edge_flows.get(e)
                if on is None:
                    if self._split_at(e, dirty):
                        on = edge_flows[e]
                    else:
                        on = edge_flows[e] = {}
                on[key] = None
                dirty[e] = None
            key += 1
        self._next_id = key
        self._resolve(dirty, [f for f in starting if type(f) is _Flow and not f.pairs])
        # (bundles have edges: no local flow is ever part of one)
        for flow in finished:
            if type(flow) is _Bundle:
                flow.done.succeed_n(flow.n)
            else:
                flow.done.succeed()
        self.transfers_done += done

    def _touch(self, flow: _Flow, dirty: dict[int, None]) -> None:
        """Split every bundle on ``flow``'s edges (a flow of a batch that could not run
        as a bundle, registered already, may share an edge with one)."""
        for e, _k in flow.pairs:
            self._split_at(e, dirty)

    def _split_at(self, e: int, dirty: dict[int, None]) -> bool:
        """Split the bundles on edge ``e`` (:meth:`_unbundle` of one splits all that share
        an edge with it); whether there were any."""
        hit = self._edge_bundles.get(e)
        if hit is None:
            return False
        self._unbundle(self._active[next(iter(hit[0]))], dirty)
        return True

    def _component(self, dirty: Mapping[int, None]
                   ) -> tuple[list, list[int], bool, list]:
        """Active flows connected to the ``dirty`` edges through shared edges, in arrival
        order, every edge they (or the dirty edges) touch, whether one of those edges
        carries more than one flow, and the bundles among them (in arrival order; the
        first list holds them too)."""
        seen_edges = dict(dirty)
        seen_flows: dict[int, Any] = {}
        stack = list(dirty)
        edge_flows, edge_bundles, active = self._edge_flows, self._edge_bundles, self._active
        shared = False
        bundles = False
        while stack:
            e = stack.pop()
            on = edge_flows.get(e)
            if not on:
                hit = edge_bundles.get(e)
                if hit is None:
                    continue
                on = hit[0]          # the bundles on this edge: rail 0 stands for all rails
                bundles = True
            if len(on) > 1:
                shared = True
            for key in on:
                if key in seen_flows:
                    continue
                flow = seen_flows[key] = active[key]
                for ee, _k in flow.pairs:
                    if ee not in seen_edges:
                        seen_edges[ee] = None
                        stack.append(ee)
        flows = [seen_flows[k] for k in sorted(seen_flows)]
        found = [f for f in flows if type(f) is _Bundle] if bundles else []
        return flows, list(seen_edges), shared, found

    def _filling(self, flows: Sequence[_Flow]) -> list[float]:
        """:func:`maxmin_rates` of ``flows`` by the vectorised progressive filling of
        :func:`drain_time_s` (for large components; same allocation, sums in another
        order)."""
        edge_index: dict[Edge, int] = {}
        caps: list[float] = []
        f_idx: list[int] = []
        e_idx: list[int] = []
        load: list[float] = []
        cap = self._cap
        for i, f in enumerate(flows):
            for e, k in f.pairs:
                j = edge_index.get(e)
                if j is None:
                    j = edge_index[e] = len(caps)
                    caps.append(cap(e))
                f_idx.append(i)
                e_idx.append(j)
                load.append(f.weight * k)
        import numpy as np
        n = len(flows)
        routed = np.zeros(n, dtype=bool)
        fi = np.array(f_idx, dtype=np.intp)
        routed[fi] = True
        rate = _filling_rates(np.ones(n, dtype=bool), routed, np.array(caps, dtype=float),
                              fi, np.array(e_idx, dtype=np.intp),
                              np.array(load, dtype=float), len(caps),
                              self._local_bandwidth_bytes_per_s)
        return [float(r) for r in rate]

    def _resolve(self, dirty: dict[int, None], local: Sequence[_Flow]) -> None:
        """Re-solve the rates of the flows connected to ``dirty`` edges (and of the
        ``local`` flows started now); a flow never solved before (``stamp`` 0: started
        now) always gets its finish time set. Bundles among them stand for their flows
        (:class:`_Bundle`): alone, each flow's rate alone; sharing links (rail by rail,
        :meth:`_join`), the rates of their rail 0."""
        now_s = float(self.env.now)
        flows, edges, shared, bundles = self._component(dirty)
        if local:
            flows.extend(local)
            flows.sort(key=lambda f: f.key)
        edge_flows = self._edge_flows
        if shared:
            # The same flows on the same routes in the same order get the same rates
            # (the same arithmetic on the same numbers): lockstep replicas meet the same
            # components micro-batch after micro-batch.
            memo = self._component_rates
            if bundles:
                # Rail 0 of the bundles stands for all rails; the solver is the one the
                # whole component would get (by its number of flows).
                signature = tuple([(f.cls, f.n) if type(f) is _Bundle else (f.cls, 1)
                                   for f in flows])
                count = sum(f.n if type(f) is _Bundle else 1 for f in flows)
            else:
                signature = tuple([f.cls for f in flows])
                count = len(flows)
            rates = memo.get(signature)
            if rates is None:
                if count > _VECTOR_FLOWS:
                    rates = self._filling(flows)
                else:
                    rates = maxmin_rates([(f.edges0 if type(f) is _Bundle else f.edges,
                                           f.weight) for f in flows],
                                         self._capacity, self._local_bandwidth_bytes_per_s)
                if len(memo) < _COMPONENT_MEMO:
                    memo[signature] = rates
        else:
            # No edge carries two flows: each flow gets its own bottleneck, the level at
            # which maxmin_rates would saturate its tightest edge (the same arithmetic).
            alone = self._alone
            rates = [(f.alone if type(f) is _Bundle else
                      (alone.get(f.cls) or self._alone_rate(f))) for f in flows]
        stats = self._edge_stats
        if stats:
            edge_of = self._edge_of
            self._settle_edges([edge_of[j] for j in edges])
            load: dict[int, float] = {j: 0.0 for j in edges}
        heap = self._heap
        for f, r in zip(flows, rates):
            if stats:
                for e, k in f.pairs:
                    load[e] = load.get(e, 0.0) + f.weight * k * r
            if r == f.rate and f.stamp:
                continue                 # same rate: its heap entry still holds
            if f.rate > 0.0 and not math.isinf(f.rate):
                f.remaining -= f.rate * (now_s - f.since)
            f.since = now_s
            f.rate = r
            f.stamp += 1
            if math.isinf(r) or f.remaining <= f.bytes_ * DONE_REL:
                at_s = now_s
            elif r > 0.0:
                at_s = now_s + max(f.remaining, 0.0) / r
            else:
                if type(f) is _Bundle:
                    f.finish_s = math.inf         # starved: no heap entry
                continue
            heapq.heappush(heap, (at_s, f.key, f.stamp))
            if type(f) is _Bundle:
                f.finish_s = at_s
        if shared and any(f.tag is not None for f in flows) and self._shares_link(edges):
            self.shared_resolves += 1
        if stats:
            for j, value in load.items():
                if value > 0.0:
                    self._edge_load[edge_of[j]] = value
                else:
                    self._edge_load.pop(edge_of[j], None)
        if stats:
            for e in edges:
                if not edge_flows.get(e):
                    edge_flows.pop(e, None)
        self._schedule_wake()

    def _cap(self, j: int) -> float:
        """Capacity of edge number ``j``."""
        c = self._edge_caps.get(j)
        if c is None:
            c = self._edge_caps[j] = self._capacity(self._edge_of[j])
        return c

    def _alone_rate(self, flow: _Flow) -> float:
        """The rate of ``flow`` with no other flow on its edges (kept per flow class):
        :meth:`_rate_alone`."""
        rate = self._alone[flow.cls] = self._rate_alone(flow.pairs, flow.weight)
        return rate

    def _rate_alone(self, pairs, weight: float) -> float:
        """The rate of a flow of ``weight`` over ``pairs`` (edge, uses) with no other flow
        on its edges: its tightest edge's capacity over its load there."""
        cap = self._cap
        return min((cap(e) / (weight * k) for e, k in pairs),
                   default=self._local_bandwidth_bytes_per_s)

    def _shares_link(self, edges: Sequence[int]) -> bool:
        """Whether one of ``edges`` carries active flows (or bundles) of two different
        tags."""
        active = self._active
        for e in edges:
            on = self._edge_flows.get(e) or self._edge_bundles.get(e, (None,))[0]
            if on is not None and len(on) > 1:
                it = iter(on)
                tag = active[next(it)].tag
                for k in it:
                    if active[k].tag != tag:
                        return True
        return False

    def _schedule_wake(self) -> None:
        heap = self._heap
        while heap:
            _, key, stamp = heap[0]
            flow = self._active.get(key)
            if flow is not None and flow.stamp == stamp:
                break
            heapq.heappop(heap)                            # stale
        if not heap:
            self._wake_s = math.inf
            return                       # idle, or every flow starved (rate 0)
        at_s = heap[0][0]
        if at_s == self._wake_s:
            return
        self._wake_s = at_s
        self._version += 1
        version = self._version
        self.env.timeout(max(at_s - float(self.env.now), 0.0)).callbacks.append(
            lambda _ev: self._wake(version))

    def _wake(self, version: int) -> None:
        if version != self._version:
            return                       # superseded by a later re-solve
        self._wake_s = math.inf
        self._flush()
