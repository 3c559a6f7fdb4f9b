"""Flat records and the files that hold them (.jsonl, .csv, .parquet).

A record is one flat dict of a step's inputs and outputs (:func:`flat_record`); a sweep
adds ``sweep.*`` columns and ``error`` to each (:mod:`simwall.studies.sweeps`). This
module is the one writer and the one reader of record files: ``simwall sweep`` writes
and resumes from them, ``simwall plot`` reads them. Public as ``simwall.write_records``
and ``simwall.read_records``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # result imports this module
    from .result import StepResult

__all__ = [
    "BREAKDOWN_KEYS",
    "ENERGY_COLUMNS",
    "RESERVED_COLUMNS",
    "columns",
    "count_entries",
    "energy_columns",
    "estimate_record",
    "flat_record",
    "format_of",
    "read_records",
    "record_line",
    "write_csv",
    "write_records",
]

#: Components of the step time; they add up to ``step_time_s`` (``breakdown.<key>_s``
#: columns; public as :data:`simwall.report.result.BREAKDOWN_KEYS` too).
BREAKDOWN_KEYS = ("compute", "tp_comm", "pp_comm", "dp_comm", "bubble", "optimizer", "other")

#: Columns every record starts with, in this order (the rest follow the StepResult record).
RESERVED_COLUMNS = ("sweep.index", "sweep.key", "error")


def _inputs_record(workload: str, cluster: str, device: str, world: int, plan: dict,
                   inputs: dict) -> dict[str, Any]:
    """The input columns every record starts with (lists as JSON text)."""
    rec: dict[str, Any] = {"workload": workload, "cluster": cluster, "device": device,
                           "world": world}
    rec.update({f"plan.{k}": (v if not isinstance(v, list) else json.dumps(v))
                for k, v in plan.items()})
    rec.update(inputs)
    return rec


def flat_record(r: StepResult) -> dict[str, Any]:
    """One flat dict of inputs and outputs (for pandas / CSV): seconds, FLOP/s, bytes."""
    rec = _inputs_record(r.workload, r.cluster, r.device, r.world, r.plan, r.inputs)
    rec.update({
        "step_time_s": r.step_time_s, "tokens_per_s": r.tokens_per_s,
        "model_tflops_per_device": r.model_tflops_per_device,
        "hardware_tflops_per_device": r.hardware_tflops_per_device,
        "mfu": r.mfu, "hfu": r.hfu,
    })
    rec.update({f"breakdown.{k}_s": v for k, v in r.breakdown_s.items()})
    rec.update({
        "memory.capacity_bytes": r.memory["capacity_bytes"],
        "memory.peak_bytes": r.memory["peak_bytes"],
        "memory.fits": r.memory["fits"],
        "critical.stage": r.critical.get("stage"),
        "confidence.device_validated": r.confidence.get("device_validated"),
        "confidence.summary": r.confidence.get("summary"),
    })
    rec.update(energy_columns(r.energy))
    return rec


#: Energy and cost columns of a record (simwall.costing.energy; None when not known).
ENERGY_COLUMNS = ("energy.j_per_step", "energy.j_per_token", "energy.w_per_device",
                  "cost.per_step", "cost.per_million_tokens")


def energy_columns(e: dict) -> dict[str, Any]:
    """The :data:`ENERGY_COLUMNS` of a step's ``energy`` dict."""
    cost = e.get("cost") or {}
    return dict(zip(ENERGY_COLUMNS, (e.get("energy_j"), e.get("j_per_token"),
                                     e.get("power_w_per_device"), cost.get("cost_per_step"),
                                     cost.get("cost_per_million_tokens")), strict=True))


def estimate_record(workload: str, cluster: str, device: str, world: int, plan: dict,
                    inputs: dict, peak_bytes: float, capacity_bytes: float
                    ) -> dict[str, Any]:
    """A record for a plan the engine did not simulate (say, one that does not fit): the
    columns of :func:`flat_record`, the engine's outputs None, ``memory.peak_bytes`` the
    closed-form peak (:mod:`simwall.model.memory`)."""
    rec = _inputs_record(workload, cluster, device, world, plan, inputs)
    rec.update(dict.fromkeys(("step_time_s", "tokens_per_s", "model_tflops_per_device",
                              "hardware_tflops_per_device", "mfu", "hfu")))
    rec.update(dict.fromkeys(f"breakdown.{k}_s" for k in BREAKDOWN_KEYS))
    rec.update({"memory.capacity_bytes": capacity_bytes, "memory.peak_bytes": peak_bytes,
                "memory.fits": peak_bytes <= capacity_bytes, "critical.stage": None})
    rec.update(dict.fromkeys(ENERGY_COLUMNS))
    return rec


def record_line(rec: dict) -> str:
    """One record as a whole JSONL line (with its newline): the journal of a running
    sweep and a final .jsonl file are written with this, so they are byte-identical."""
    return json.dumps(rec) + "\n"


def _encode_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _decode_cell(text: str) -> Any:
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def columns(records: Iterable[dict]) -> list[str]:
    """A stable column order: the reserved columns, then every other key in order of
    first appearance over the records (records in index order)."""
    seen = dict.fromkeys(RESERVED_COLUMNS)
    for rec in records:
        for k in rec:
            seen.setdefault(k, None)
    return list(seen)


def write_records(path: str | Path, records: list[dict]) -> None:
    """Write ``records`` (already in index order) as .jsonl, .csv or .parquet; atomic
    (written beside, then renamed)."""
    path = Path(path)
    fmt = format_of(path)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "jsonl":
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(record_line(rec) for rec in records)
    elif fmt == "csv":
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            write_csv(fh, records)
    else:
        pa, pq = _pyarrow()
        data = {}
        for c in columns(records):
            values = [_parquet_cell(r.get(c)) for r in records]
            try:
                data[c] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # A column of mixed types (an axis such as plan.dp: [auto, 8]): store it
                # as JSON text rather than fail at the end of a long sweep.
                data[c] = pa.array([None if v is None else json.dumps(v) for v in values])
        pq.write_table(pa.table(data), tmp)
    os.replace(tmp, path)


def write_csv(fh: IO[str], records: list[dict]) -> None:
    """``records`` as CSV (a header of :func:`columns`, then one row each) to the text
    stream ``fh`` (a file, or stdout for ``simwall plan --format csv``)."""
    cols = columns(records)
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(cols)
    for rec in records:
        w.writerow([_encode_cell(rec.get(c)) for c in cols])


def _parquet_cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def _pyarrow():
    # Imported here: pyarrow is an optional extra (simwall[parquet]) and slow to import.
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("-o", None, "writing .parquet needs pyarrow: pip install "
                          "'simwall[parquet]' (or write .csv / .jsonl)") from None
    return pa, pq


def format_of(path: str | Path) -> str:
    """``jsonl``, ``csv`` or ``parquet`` by the suffix of ``path``; else a ConfigError
    (located at ``-o``, the flag that names a sweep's output)."""
    path = Path(path)
    suffix = path.suffix.lower()
    fmt = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}.get(suffix)
    if fmt is None:
        raise ConfigError("-o", None, f"expected an output ending in .csv, .jsonl or "
                          f".parquet, got '{path.name}'")
    return fmt


def read_records(path: str | Path, strict: bool = False) -> list[dict]:
    """Records of a .jsonl / .csv / .parquet file written by a sweep.

    Lenient (the default; a sweep's own journal and ``--resume``): an absent file is
    ``[]``, and a JSONL line that is not a whole record (a killed writer's half line) is
    skipped. ``strict`` (``simwall plot``, any results file): an absent file, an unknown
    suffix or a bad JSONL line is a ConfigError naming the file (and the line), ``.json``
    is read as JSONL, and every JSON object is a record.
    """
    where = str(path)
    path = Path(path)
    if not path.is_file():
        if strict:
            raise ConfigError(where, None, "no such file (expected a .csv or .jsonl "
                              "written by 'simwall sweep')")
        return []
    if strict and path.suffix.lower() == ".json":
        fmt = "jsonl"
    elif strict and path.suffix.lower() not in (".jsonl", ".csv", ".parquet"):
        raise ConfigError(where, None, f"expected a .csv, .jsonl or .parquet file, got "
                          f"'{path.suffix}'")
    else:
        fmt = format_of(path)
    with _reading(where, fmt):
        if fmt == "jsonl":
            return _read_jsonl(path, where, strict)
        if fmt == "csv":
            with open(path, encoding="utf-8", newline="") as fh:
                return [{k: _decode_cell(v) for k, v in row.items()}
                        for row in csv.DictReader(fh)]
    pa, pq = _pyarrow()
    try:
        return pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as err:
        raise ConfigError(where, None, f"not a Parquet file written by 'simwall sweep' "
                          f"({' '.join(str(err).split())[:80]})") from None


@contextlib.contextmanager
def _reading(where: str, fmt: str) -> Iterator[None]:
    """A text results file that cannot be read becomes one ConfigError naming it."""
    try:
        yield
    except UnicodeDecodeError:
        raise ConfigError(where, None, f"not UTF-8 text (expected a .{fmt} file written by "
                          f"'simwall sweep')") from None
    except csv.Error as err:  # e.g. a NUL byte
        raise ConfigError(where, None, f"not a CSV file written by 'simwall sweep' "
                          f"({err})") from None
    except OSError as err:
        raise ConfigError(where, None, f"cannot read: {err.strerror or err}") from None


def count_entries(path: str | Path) -> int:
    """Entries of results file ``path``, records or not: rows of a .csv or .parquet,
    non-blank lines of a .jsonl except a torn last one (a killed writer's half line: no
    newline, not JSON). 0 for an absent file. Against :func:`read_records` it tells
    whether a file holds anything besides records."""
    path = Path(path)
    if format_of(path) != "jsonl" or not path.is_file():
        return len(read_records(path))
    with _reading(str(path), "jsonl"), open(path, encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip()]
    if lines and not lines[-1].endswith("\n") and not _is_json(lines[-1]):
        return len(lines) - 1
    return len(lines)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _read_jsonl(path: Path, where: str, strict: bool) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                if strict:
                    raise ConfigError(where, None, f"line {i}: not JSON ({err.msg})") from None
                continue
            if not isinstance(rec, dict):
                if strict:
                    raise ConfigError(where, None, f"line {i}: expected a JSON object")
                continue
            if strict or "sweep.key" in rec:
                out.append(rec)
    return out
