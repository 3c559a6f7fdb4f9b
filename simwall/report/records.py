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
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..config.overrides import is_numpy
from ..errors import ConfigError
from .outputs import check_output_path, output_error

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
    "flat_cell",
    "flat_record",
    "format_of",
    "plain_value",
    "read_held_records",
    "read_records",
    "record_line",
    "save_records",
    "value_kind",
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
        return repr(float(value))  # a subclass's repr may not be a number
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
    """A stable column order: the reserved columns that any record has, then every other
    key in order of first appearance over the records (records in index order)."""
    records = list(records)
    seen = dict.fromkeys(c for c in RESERVED_COLUMNS if any(c in rec for rec in records))
    for rec in records:
        for k in rec:
            seen.setdefault(k, None)
    return list(seen)


def write_records(path: str | Path, records: Iterable[dict]) -> None:
    """Write ``records`` (any iterable of dicts, such as :func:`simwall.sweep`'s
    generator; in index order) to ``path`` as .jsonl, .csv or .parquet, by its suffix.

    Atomic: written beside, then renamed; nothing is left behind when it fails. Numbers
    are written as plain numbers (numpy scalars included). A ConfigError names the
    argument at fault: ``path`` (not a file name, an unknown suffix, a directory that
    does not exist, a file that cannot be written) or ``records[i]`` (not a dict, a
    column name that is not a string, a value that is not plain data).
    """
    where = _path_argument(path)
    fmt = format_of(where, flag="path")
    path = check_output_path(where, "path", replace=True)
    rows = _plain_records(records)
    try:
        save_records(path, rows, fmt)
    except OSError as err:
        raise output_error("path", where, err) from None


def save_records(path: Path, records: list[dict], fmt: str | None = None) -> None:
    """Write ``records`` of plain values (simwall's own, or checked by
    :func:`write_records`) to ``path`` atomically: written beside, then renamed. An
    OSError is left to the caller to name its flag; the file beside is removed."""
    fmt = fmt or format_of(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.writelines(record_line(rec) for rec in records)
        elif fmt == "csv":
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                write_csv(fh, records)
        else:
            _write_parquet(tmp, records, str(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def _write_parquet(tmp: Path, records: list[dict], where: str) -> None:
    pa, pq = _pyarrow(where)
    data = {}
    for c in columns(records):
        values = [flat_cell(r.get(c)) for r in records]
        try:
            data[c] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # A column of mixed types (an axis such as plan.dp: [auto, 8]): store it
            # as JSON text rather than fail at the end of a long sweep.
            data[c] = pa.array([None if v is None else json.dumps(v) for v in values])
    pq.write_table(pa.table(data), tmp)


def _path_argument(path: Any) -> str:
    """``path`` (a str or os.PathLike) as text; else a ConfigError naming ``path``."""
    if isinstance(path, (str, os.PathLike)):
        text = os.fspath(path)
        if isinstance(text, str) and text:
            return text
    raise ConfigError(None, "path", f"expected a file name (a str or os.PathLike) ending "
                      f"in .csv, .jsonl or .parquet, got {value_kind(path)}")


def value_kind(value: Any) -> str:
    """What ``value`` is, for an error message: its type, and its text if short."""
    text = repr(value)
    return type(value).__name__ + (f" {text}" if len(text) <= 40 else "")


def plain_value(value: Any) -> Any:
    """``value`` as plain data, shared with no caller: a numpy scalar or array as the
    Python number or list it holds (``np.float64(1e12)`` -> ``1e12``), a subclass of
    bool, int, float or str as that type, a tuple as a list, lists and dicts as new
    ones (as JSON holds them); TypeError for anything else."""
    if value is None:
        return None
    if is_numpy(value):
        return plain_value(value.tolist())
    for kind in (bool, int, float, str):  # bool first: it is an int
        if isinstance(value, kind):
            return value if type(value) is kind else kind(value)
    if isinstance(value, (list, tuple, dict)):
        return json.loads(json.dumps(value, default=_numpy_default))
    raise TypeError(f"expected a number, string, bool, None, list or dict, got "
                    f"{value_kind(value)}")


def _numpy_default(value: Any) -> Any:
    if is_numpy(value):
        return value.tolist()
    raise TypeError(f"expected a number, string, bool, None, list or dict, got "
                    f"{value_kind(value)}")


def _plain_records(records: Any) -> list[dict]:
    """``records`` (an iterable of dicts), read once, as new dicts of plain values; a
    ConfigError naming ``records`` or ``records[i]`` otherwise."""
    if isinstance(records, Mapping):
        raise ConfigError(None, "records", "expected an iterable of records (dicts), got "
                          "one dict: pass [record]")
    if isinstance(records, (str, bytes)) or not isinstance(records, Iterable):
        raise ConfigError(None, "records", f"expected an iterable of records (dicts), got "
                          f"{value_kind(records)}")
    out = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise ConfigError(None, f"records[{i}]", f"expected a record (a dict of column "
                              f"-> value), got {value_kind(rec)}")
        row = {}
        for key, value in rec.items():
            if not isinstance(key, str):
                raise ConfigError(None, f"records[{i}]", f"column names must be strings, "
                                  f"got {value_kind(key)}")
            try:
                row[key] = plain_value(value)
            except (TypeError, ValueError) as err:  # ValueError: a circular list
                raise ConfigError(None, f"records[{i}].{key}", str(err)) from None
        out.append(row)
    return out


def write_csv(fh: IO[str], records: list[dict]) -> None:
    """``records`` as CSV (a header of :func:`columns`, then one row each) to the text
    stream ``fh`` (a file, or stdout for ``simwall plan --format csv``)."""
    cols = columns(records)
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(cols)
    for rec in records:
        w.writerow([_encode_cell(rec.get(c)) for c in cols])


def flat_cell(value: Any) -> Any:
    """``value`` as one flat column holds it: a list or dict as JSON text (as
    ``plan.stage_layers`` is), anything else as it is (Parquet cells, sweep axis
    columns)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def _pyarrow(where: str):
    # Imported here: pyarrow is an optional extra (simwall[parquet]) and slow to import.
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(where, None, "a .parquet file needs pyarrow: pip install "
                          "'simwall[parquet]' (or use .csv / .jsonl)") from None
    return pa, pq


#: Record file formats by suffix.
_FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def format_of(path: str | Path, flag: str = "-o") -> str:
    """``jsonl``, ``csv`` or ``parquet`` by the suffix of ``path``; else a ConfigError
    located at ``flag`` (``-o``, the flag that names a sweep's output, by default)."""
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(flag, None, f"expected an output ending in .csv, .jsonl or "
                          f".parquet, got '{path.name}'")
    return fmt


def read_records(path: str | Path, strict: bool = False) -> list[dict]:
    """Every record of a .jsonl / .csv / .parquet file (say, one written by
    :func:`write_records` or ``simwall sweep``), in file order.

    A missing file, or ``path`` that is no file name, is a ConfigError naming it. Every
    JSON object of a .jsonl file is a record, whatever its columns. Lenient (the
    default): a JSONL line that is not a JSON object (a killed writer's half line) is
    skipped. ``strict`` (``simwall plot``, any results file): such a line is a
    ConfigError naming the file and the line, an unknown suffix is one naming the file,
    and ``.json`` is read as JSONL.
    """
    where = _path_argument(path)
    path = Path(where)
    if not path.is_file():
        raise ConfigError(where, None, "not a file" if path.exists() else "no such file "
                          "(expected a .csv, .jsonl or .parquet file of records)")
    return _read_file(path, where, strict)


def read_held_records(path: str | Path) -> list[dict]:
    """Records of a sweep's own output or journal (:func:`read_records`, lenient), or
    ``[]`` when there is no such file yet: what ``--resume`` reads."""
    path = Path(path)
    return _read_file(path, str(path), strict=False) if path.is_file() else []


def _read_file(path: Path, where: str, strict: bool) -> list[dict]:
    suffix = path.suffix.lower()
    fmt = "jsonl" if strict and suffix == ".json" else _FORMATS.get(suffix)
    if fmt is None:
        raise ConfigError(where, None, f"expected a .csv, .jsonl or .parquet file, got "
                          f"'{path.suffix}'")
    with _reading(where, fmt):
        if fmt == "jsonl":
            return _read_jsonl(path, where, strict)
        if fmt == "csv":
            with open(path, encoding="utf-8", newline="") as fh:
                return [{k: _decode_cell(v) for k, v in row.items()}
                        for row in csv.DictReader(fh)]
    pa, pq = _pyarrow(where)
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
        return len(read_held_records(path))
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
            out.append(rec)
    return out
