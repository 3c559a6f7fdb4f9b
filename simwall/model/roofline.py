"""Roofline table of one transformer layer (plus embedding and head) on one device: the
total sums those rows, one layer of many, not the whole model.

Each row is one op of one device for one micro-batch: FLOP, bytes moved, arithmetic
intensity, whether it is compute or memory bound on the device, its time and its share of
the listed time. The point it makes is the "memory wall" (Gholami et al. 2024, "AI and
Memory Wall", IEEE Micro 44(3)): large-batch GEMMs sit far right of the ridge point, while
decoding one token at a time is memory bound whatever the peak FLOP/s.
"""

from __future__ import annotations

from ..config import DeviceSpec, Workload
from ..errors import SimwallError
from ..plan import Plan, balanced_split
from .ops import MODES, embedding_ops, head_ops, layer_ops
from .optime import bound, op_time_s, ridge_point

__all__ = ["TOTAL_LABEL", "render", "roofline_rows", "scope_line", "single_layer_plan"]

_COLUMNS = ("part", "op", "pass", "kind", "flop", "bytes", "intensity", "bound", "time_s",
            "share")


def single_layer_plan(workload: Workload) -> Plan:
    """The workload's TP / SP / recompute / micro-batch on one pipeline stage and one DP
    replica: enough to list one device's ops without a cluster."""
    spec, train = workload.plan, workload.training
    return Plan(tp=spec.tp, pp=1, dp=1, virtual_stages=1,
                sequence_parallel=spec.sequence_parallel and spec.tp > 1, zero=spec.zero,
                recompute=spec.recompute, schedule="1f1b", micro_batch=train.micro_batch,
                global_batch=train.micro_batch,
                stage_layers=balanced_split(workload.model.layers, 1))


def roofline_rows(workload: Workload, device: DeviceSpec, mode: str = "train",
                  plan: Plan | None = None) -> list[dict]:
    """Rows (dicts with keys ``part, op, pass, kind, flop, bytes, intensity, bound, time_s,
    share, device, mode, precision, ridge_flop_per_byte, model_layers``) for the embedding,
    one (dense) layer and the head. ``train`` lists forward, recompute and backward ops;
    ``prefill`` / ``decode`` the forward only. ``share`` is the op's fraction of the summed
    ``time_s`` of all rows (one layer, not the whole model); ``model_layers`` is the
    model's layer count, of which the ``layer`` rows are one.
    """
    if mode not in MODES:
        raise SimwallError(f"roofline: mode must be one of {', '.join(MODES)}, got {mode!r}")
    model, training = workload.model, workload.training
    plan = plan or single_layer_plan(workload)
    precision = training.precision
    passes = ("fwd", "recompute", "bwd") if mode == "train" else ("fwd",)
    listed = []
    for part, fn in (("embedding", embedding_ops), ("layer", layer_ops), ("head", head_ops)):
        for pass_ in passes:
            listed += [(part, op) for op in fn(model, training, plan, pass_, mode)]
    ridge = ridge_point(device, precision)
    rows = []
    for part, op in listed:
        rows.append({
            "part": part, "op": op.name, "pass": op.pass_, "kind": op.kind,
            "flop": op.flop, "bytes": op.bytes_, "intensity": op.intensity,
            "bound": bound(op, device, precision), "time_s": op_time_s(op, device, precision),
            "device": device.name, "mode": mode, "precision": precision,
            "ridge_flop_per_byte": ridge, "model_layers": model.layers,
        })
    total = sum(r["time_s"] for r in rows)
    for r in rows:
        r["share"] = r["time_s"] / total if total > 0 else 0.0
    return rows


def _fmt(key: str, value) -> str:
    if key in ("flop", "bytes"):
        return f"{value:.3e}"
    if key == "intensity":
        return f"{value:.1f}"
    if key == "time_s":
        return f"{value * 1e6:.1f}"
    if key == "share":
        return f"{100 * value:.1f}%"
    return str(value)


#: The label of the total row: what it sums (one layer, not the model's every layer).
TOTAL_LABEL = ("total", "embedding + 1 layer + head")


def scope_line(model_layers: int | None) -> str:
    """The line that says what the rows cover: one of ``model_layers`` layers, so the
    total and the shares are not the whole model's."""
    of = f" of the model's {model_layers}" if model_layers else ""
    return (f"layer rows: one dense layer{of}; total and share cover the rows listed, "
            f"not the whole model")


def render(rows: list[dict]) -> str:
    """An aligned text table of ``rows``, headed by device, mode, precision and ridge point
    and by :func:`scope_line`; times in microseconds. Ends with the total of the rows
    listed (:data:`TOTAL_LABEL`)."""
    if not rows:
        return "(no ops)\n"
    first = rows[0]
    head = (f"roofline: {first['device']}, mode {first['mode']}, {first['precision']}, "
            f"ridge point {first['ridge_flop_per_byte']:.1f} FLOP/byte\n"
            f"{scope_line(first.get('model_layers'))}")
    titles = {"time_s": "time_us", "intensity": "FLOP/byte"}
    header = [titles.get(c, c) for c in _COLUMNS]
    body = [[_fmt(c, r[c]) for c in _COLUMNS] for r in rows]
    total_t = sum(r["time_s"] for r in rows)
    total_f = sum(r["flop"] for r in rows)
    total_b = sum(r["bytes"] for r in rows)
    body.append([*TOTAL_LABEL, "", "", _fmt("flop", total_f), _fmt("bytes", total_b),
                 _fmt("intensity", total_f / total_b if total_b else 0.0), "",
                 _fmt("time_s", total_t), "100.0%"])
    widths = [max(len(header[i]), *(len(b[i]) for b in body)) for i in range(len(header))]
    numeric = {"flop", "bytes", "intensity", "time_s", "share"}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if _COLUMNS[i] in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [head, line(header), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    return "\n".join(out) + "\n"
