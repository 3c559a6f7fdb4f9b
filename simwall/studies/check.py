"""Plan checking (``simwall check``): is the user's own plan valid, does it fit (where, by
how much, which single changes would make it fit) and how does it rank among the plans
:func:`simwall.studies.search.search` considers?"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..api import prepare, run_prepared
from ..config import PRECISION_BYTES, ClusterSpec, PlanSpec, TrainingSpec, Workload
from ..engine.prepare import load_inputs
from ..engine.step import step_inputs
from ..errors import ConfigError
from ..hardware.catalog import resolve_device
from ..model.memory import MemoryModel, memory_reserve
from ..plan import Plan, framed, framework_label, plan_record
from ..report import estimate_record
from .progress import Progress
from .search import GB, Searcher, describe_plan, enumerate_plans

__all__ = ["CheckResult", "check", "setting_origins"]


@dataclass(frozen=True)
class CheckResult:
    """The verdict, its text lines and one flat record for the plan checked (the columns
    of a sweep record plus ``check.*`` and ``search.*``; ``simwall check --format
    json|csv``)."""

    status: str                       # 'invalid' | 'does-not-fit' | 'fits'
    lines: tuple[str, ...]
    record: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        # The verdict and its first lines; ``lines`` and ``record`` hold the rest.
        return f"CheckResult({self.status}: {' / '.join(self.lines[:2])})"


def _yaml_text(value: Any) -> str:
    """A setting's value as YAML would show it (``false``, ``auto``, ``[4, 4]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_text(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def setting_origins(workload: Workload) -> dict[str, list[tuple[str, Any]]]:
    """The ``plan.*`` and ``training.*`` settings of ``workload`` by where their value
    came from (:meth:`simwall.config.Workload.origin`): ``file``, ``--set`` or
    ``default``, each a list of (key, value) in schema order."""
    out: dict[str, list[tuple[str, Any]]] = {"file": [], "--set": [], "default": []}
    for section, spec_cls in (("plan", PlanSpec), ("training", TrainingSpec)):
        spec = getattr(workload, section)
        for name in spec_cls.model_fields:
            key = f"{section}.{name}"
            out[workload.origin(key)].append((key, getattr(spec, name)))
    return out


def _origin_lines(workload: Workload, overrides: dict[str, Any]) -> list[str]:
    """Where each plan and training setting came from: the file, ``--set``, or the
    schema's defaults (a bundled workload's file sets some the user did not ask for)."""
    origins = setting_origins(workload)
    lines = []
    if overrides:
        lines.append("from --set: " + ", ".join(f"{k}={_yaml_text(v)}"
                                                  for k, v in overrides.items()))
    for origin, label in (("file", f"from {workload.file}"), ("default", "from defaults")):
        if origins[origin]:
            lines.append(f"{label}: " + ", ".join(f"{k}={_yaml_text(v)}"
                                                   for k, v in origins[origin]))
    return lines


def _origin_columns(workload: Workload) -> dict[str, str]:
    origins = setting_origins(workload)
    return {f"check.from_{name}": ", ".join(k for k, _ in origins[origin])
            for name, origin in (("file", "file"), ("set", "--set"), ("defaults", "default"))}


def _same_shard(cand: Plan, plan: Plan) -> Plan:
    """The search's ``cand`` (fully sharded) with ``plan``'s hybrid shard group kept where
    it still splits the candidate's DP x CP ranks, so a fix changes one thing."""
    if not plan.dp_shard or cand.dp_cp % plan.dp_shard or cand.dp_cp == plan.dp_shard:
        return cand
    return replace(cand, dp_shard=plan.dp_shard)


def _changes(s: Searcher, plan: Plan) -> list[tuple[str, Plan]]:
    """Single changes to ``plan`` that may save memory: (label, changed plan), each run
    the way the workload's framework setting would run it (:func:`simwall.plan.framed`)."""
    spec, training = s.workload.plan, s.workload.training

    def changed(p: Plan, **changes) -> Plan:
        return framed(replace(p, **changes), spec,
                      PRECISION_BYTES[training.grad_reduce_precision_])

    tries: list[tuple[str, Plan]] = []
    if plan.dp_cp > 1:      # ZeRO shards over DP x CP
        for z in range(plan.zero + 1, 4):
            tries.append((f"zero {plan.zero} -> {z}", changed(plan, zero=z)))
    if plan.dp_shard and plan.dp_cp % (2 * plan.dp_shard) == 0:
        # A hybrid shard group twice as large (full sharding at the end) holds half the
        # states per device.
        wider = 2 * plan.dp_shard
        tries.append((f"dp_shard {plan.dp_shard} -> {wider}",
                      changed(plan, dp_shard=0 if wider == plan.dp_cp else wider)))
    order = ("none", "selective", "full")
    for rc in order[order.index(plan.recompute) + 1:]:
        tries.append((f"recompute {plan.recompute} -> {rc}", changed(plan, recompute=rc)))
    if plan.tp > 1 and not plan.sequence_parallel:
        tries.append(("sequence_parallel on", changed(plan, sequence_parallel=True)))
    half = plan.micro_batch // 2
    if half >= 1 and plan.global_batch % (plan.dp * half) == 0 and (
            plan.schedule != "interleaved" or (plan.global_batch // (plan.dp * half))
            % plan.pp == 0):
        tries.append((f"micro_batch {plan.micro_batch} -> {half}",
                      changed(plan, micro_batch=half)))
    if plan.pp > 1 and plan.schedule != "1f1b":
        # 1F1B holds at most pp - stage micro-batches: fewer than GPipe's m, interleaving's
        # deeper warm-up (Narayanan et al. 2021, Sec. 2.2.2) or ZB-H1's deferred W passes.
        # Each stage keeps its layers (an interleaved stage's chunks merged).
        per_stage = tuple(sum(plan.stage_layers[st::plan.pp]) for st in range(plan.pp))
        tries.append((f"schedule {plan.schedule} -> 1f1b",
                      changed(plan, schedule="1f1b", virtual_stages=1,
                              stage_layers=per_stage)))
    # Raise pp (same tp, dp shrinks): the search's own enumeration says what is valid.
    for cand in enumerate_plans(s.workload, s.cluster):
        if (cand.tp == plan.tp and cand.cp == plan.cp and cand.pp > plan.pp
                and cand.micro_batch == plan.micro_batch
                and cand.zero == (plan.zero if cand.dp_cp > 1 else 0)
                and cand.recompute == plan.recompute and cand.schedule == plan.schedule
                and cand.virtual_stages == plan.virtual_stages
                and cand.sequence_parallel == plan.sequence_parallel):
            tries.append((f"pp {plan.pp} -> {cand.pp}", _same_shard(cand, plan)))
            break
    # Raise cp (same tp and pp, dp shrinks): each CP rank keeps s/cp tokens' activations.
    for cand in enumerate_plans(s.workload, s.cluster):
        if (cand.tp == plan.tp and cand.pp == plan.pp and cand.cp > plan.cp
                and cand.micro_batch == plan.micro_batch and cand.zero == plan.zero
                and cand.recompute == plan.recompute and cand.schedule == plan.schedule
                and cand.virtual_stages == plan.virtual_stages
                and cand.sequence_parallel == plan.sequence_parallel):
            tries.append((f"cp {plan.cp} -> {cand.cp}", _same_shard(cand, plan)))
            break
    return tries


#: The label of :func:`_fixes`'s one change outside the plan: a fused loss keeps the
#: 16-bit logits instead of fp32 ones (``model.cross_entropy``, docs/memory-model.md).
FUSED_LOSS_FIX = ("model.cross_entropy default -> fused (flash-attn's cross-entropy, or "
                  "the loss under torch.compile)")


def _fused_loss_peak(s: Searcher, plan: Plan) -> float | None:
    """The closed-form peak of ``plan`` with a fused cross-entropy, where the workload
    runs the default one (else None)."""
    model = s.workload.model
    if model.cross_entropy != "default":
        return None
    fused = MemoryModel(model.model_copy(update={"cross_entropy": "fused"}),
                        s.workload.training, *memory_reserve(s.cluster))
    return fused.peak(plan)[0]


def _fixes(s: Searcher, plan: Plan) -> list[str]:
    """Changes to ``plan`` that save memory, with their savings, fitting ones first;
    when no single change fits, also the greedy combination of the biggest savers (plan
    changes only). One change outside the plan is offered too: a fused loss."""
    base, _ = s.peak(plan)
    out = []
    for label, p in _changes(s, plan):
        peak, _ = s.peak(p)
        if base - peak > 0:
            out.append((peak <= s.capacity_bytes, base - peak, label))
    fused = _fused_loss_peak(s, plan)
    if fused is not None and base - fused > 0:
        out.append((fused <= s.capacity_bytes, base - fused, FUSED_LOSS_FIX))
    out.sort(key=lambda x: (not x[0], -x[1], x[2]))
    lines = [f"{label} saves {saved / GB:.1f} GB" + (" (then fits)" if ok else "")
             for ok, saved, label in out]
    if out and not out[0][0]:
        current, labels = plan, []
        for _ in range(6):  # greedy: take the biggest saver, re-evaluate from there
            options = [(s.peak(p)[0], label, p) for label, p in _changes(s, current)]
            options = [o for o in options if o[0] < s.peak(current)[0]]
            if not options:
                break
            peak, label, current = min(options, key=lambda o: (o[0], o[1]))
            labels.append(label)
            if peak <= s.capacity_bytes:
                lines.insert(0, f"together: {' + '.join(labels)} saves "
                             f"{(base - peak) / GB:.1f} GB (then fits)")
                break
    return lines


def exposed_line(plan: Plan, breakdown_s: dict[str, float]) -> str:
    """What communication the step exposes and under which framework semantics
    (plan.framework, config.FRAMEWORK_PRESETS) the rest is hidden."""
    hidden = []
    if plan.tp > 1:
        hidden.append("TP with the GEMMs" if plan.tp_comm_overlap and plan.sequence_parallel
                      else "TP: none (tp_comm_overlap off" + ("" if plan.sequence_parallel
                                                             else ", needs SP") + ")")
    if plan.dp > 1:
        hidden.append("DP reduction with the backward" if plan.dp_overlap else
                      "DP reduction: none (dp_overlap off)")
        if plan.zero in (1, 2):
            hidden.append("parameter all-gather with the next forward"
                          if plan.overlap_param_gather else "parameter all-gather: none")
        if plan.zero == 3:
            hidden.append(f"ZeRO-3 gathers per {plan.zero3_gather_unit}, prefetch "
                          f"{plan.zero3_prefetch}")
    return (f"exposed communication ({plan.framework} semantics): tp "
            f"{breakdown_s['tp_comm']:.4f} s, pp {breakdown_s['pp_comm']:.4f} s, dp "
            f"{breakdown_s['dp_comm']:.4f} s; overlapped: " + ("; ".join(hidden) or "nothing"))


def check(workload: str | Workload, cluster: str | ClusterSpec | None = None,
          overrides: dict[str, Any] | None = None,
          progress: Progress | None = None) -> CheckResult:
    """Check the user's plan: invalid, does not fit (where, by how much, what would
    fix it) or fits (step time and its rank among the plans ``search`` considers), and
    say where each plan and training setting came from (file, ``--set`` or default).
    ``progress``: hook the plan enumeration goes through (:mod:`.progress`)."""

    overrides = dict(overrides or {})
    # Inputs that cannot be read as a workload, a cluster and its device (a missing or
    # unreadable file, a syntax error, an unknown key, a wrong type, an unknown device)
    # raise: nothing to check (the CLI's one-line error, exit 2). ``invalid`` is the
    # verdict on a well-formed plan that cannot run.
    wl, cl = load_inputs(workload, cluster, overrides)
    resolve_device(cl.device, "device", cl.file)
    try:
        prep = prepare(wl, cl)
    except ConfigError as err:
        message = " ".join(str(err).split())
        return CheckResult("invalid", (f"invalid: {message}",),
                           {"sweep.index": 0, "sweep.key": None, "error": message,
                            "check.status": "invalid"})
    s = Searcher(prep.workload, prep.cluster)
    plan = prep.plan
    peak, stage = s.peak(plan)
    cap = s.capacity_bytes
    head = f"plan: {describe_plan(plan)} on {s.world} x {s.device.name}"
    origins = _origin_lines(prep.workload, overrides)
    extra = {"search.framework": framework_label(plan), **_origin_columns(prep.workload),
             "check.from_set": ", ".join(overrides)}
    if peak > cap:
        lines = [head, (f"does not fit: stage {stage} (device {plan.device_of(stage, 0, 0)}) "
                        f"needs {peak / GB:.1f} GB of {cap / GB:.1f} GB, "
                        f"{(peak - cap) / GB:.1f} GB over"),
                 f"runs on: {framework_label(plan)}"]
        fixes = _fixes(s, plan)
        lines += [f"  fix: {f}" for f in fixes[:5]] or ["  no single change fixes it"]
        rec = _head(0) | estimate_record(prep.workload.name, s.cluster.name, s.device.name,
                                         s.world, plan_record(plan), step_inputs(prep), peak,
                                         cap)
        rec.update({"check.status": "does-not-fit", **extra})
        return CheckResult("does-not-fit", tuple(lines + origins), rec)
    result = run_prepared(prep)
    mine, _ = s.estimate(plan)
    n, n_fit, cands = s.candidates(below_s=mine, progress=progress)
    if not cands:
        n, n_fit, cands = s.candidates(need=1, progress=progress)
    rank = 1 + sum(1 for c in cands if c.estimate_s < mine)
    lines = [head, f"fits: peak {result.memory['peak_bytes'] / GB:.1f} GB of {cap / GB:.1f} GB",
             f"step time {result.step_time_s:.4f} s, MFU {result.mfu * 100:.1f}%",
             _rank_line(rank, n_fit, n, mine, cands[0]) if cands else "rank: no plan fits",
             f"runs on: {framework_label(plan)}",
             exposed_line(plan, result.breakdown_s),
             f"confidence: {result.confidence.get('summary', '')}"]
    status = "fits"
    if not result.memory["fits"]:
        lines[1] = (f"does not fit: fits the closed-form model ({peak / GB:.1f} GB) but the "
                    f"engine's peak is {result.memory['peak_bytes'] / GB:.1f} GB of "
                    f"{cap / GB:.1f} GB")
        status = "does-not-fit"
    rec = _head(0) | result.to_record()
    rec.update({"check.status": status, "search.rank": rank if cands else None,
                "search.estimate_s": mine, "check.fitting_plans": n_fit,
                "check.valid_plans": n, **extra})
    return CheckResult(status, tuple(lines + origins), rec)


def _rank_line(rank: int, n_fit: int, n: int, mine_s: float, best) -> str:
    """Where the checked plan's estimate ``mine_s`` ranks among the ``n_fit`` fitting plans
    of the search (``n`` valid), against the search's ``best`` candidate; a plan faster
    than every one of them (settings the search does not try, e.g. ``ep_overlap``) says
    so rather than "rank 1" beside a slower "best"."""
    versus = f"{best.estimate_s:.4f} s: {describe_plan(best.plan)}"
    if mine_s < best.estimate_s:
        return (f"rank 1: faster by the analytic estimate ({mine_s:.4f} s) than all "
                f"{n_fit} fitting plans the search considers ({n} valid; its best {versus})")
    return (f"rank {rank} of {n_fit} fitting plans ({n} valid) by the analytic estimate "
            f"({mine_s:.4f} s; best {versus})")


def _head(index: int) -> dict[str, Any]:
    """The reserved columns of a sweep record (:data:`simwall.report.RESERVED_COLUMNS`):
    a checked plan is no sweep point, so it has no ``sweep.key``."""
    return {"sweep.index": index, "sweep.key": None, "error": None}
