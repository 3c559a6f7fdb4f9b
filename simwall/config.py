"""Typed, validated inputs: YAML in, frozen objects out.

This module is the only place that sees raw YAML. It owns
- the safe YAML loader (line numbers, duplicate keys, ``3e12`` read as a float),
- the schemas of workloads, clusters and the hardware catalog (pydantic v2, frozen,
  unknown keys forbidden, no NaN/inf),
- ``--set KEY=VALUE`` overrides, applied to the raw document before validation,
- finding bundled files by name,
- turning every validation failure into a :class:`ConfigError` that names the file, the
  key path and what was expected.

Why pydantic: it gives typed frozen objects, per-field constraints and precise error
locations (``loc``) for free; hand-written checks would duplicate all of that. See
docs/input-formats.md.
"""

from __future__ import annotations

import difflib
import math
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .errors import ConfigError

__all__ = [
    "ModelSpec", "TrainingSpec", "PlanSpec", "Workload", "DeviceSpec", "LinkSpec",
    "ClusterSpec", "IntraSpec", "InterSpec", "HostSpec", "FaultSpec", "Straggler",
    "DegradedLink", "EfficiencySpec", "load_yaml", "parse_yaml", "load_workload",
    "load_cluster", "bundled_names", "find_file", "apply_overrides", "parse_set",
    "validate", "PRECISION_BYTES",
]

# ---------------------------------------------------------------------------------------
# YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader that records key lines and rejects duplicate keys."""


# PyYAML (YAML 1.1) reads ``3e12`` and ``1e-6`` (no dot) as strings; read them as floats.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class _LineDict(dict):
    """A mapping that remembers the line (1-based) of each of its keys."""

    lines: dict[Any, int]


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> _LineDict:
    loader.flatten_mapping(node)
    out = _LineDict()
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ConfigError(None, None, "mapping keys must be plain scalars",
                              line=key_node.start_mark.line + 1) from None
        if key in out:
            raise ConfigError(None, str(key), f"duplicate key (first at line {out.lines[key]})",
                              line=key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML ``text`` safely; errors are :class:`ConfigError` located in ``source``."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except ConfigError as err:
        raise err.with_source(source) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = err.problem or err.context or "invalid YAML"
        raise ConfigError(source, None, f"invalid YAML: {problem}", line=line) from None
    except yaml.YAMLError as err:
        raise ConfigError(source, None, f"invalid YAML: {err}") from None
    except RecursionError:
        raise ConfigError(source, None, "invalid YAML: nested too deeply") from None


def load_yaml(path: str | Path) -> Any:
    """Read and parse one YAML file; a missing or unreadable file is a ConfigError."""
    source = str(path)
    p = Path(path)
    if not p.exists():
        raise ConfigError(source, None, "no such file")
    if not p.is_file():
        raise ConfigError(source, None, "not a file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(source, None, "not UTF-8 text (expected a YAML file)") from None
    except OSError as err:
        raise ConfigError(source, None, f"cannot read: {err.strerror}") from None
    return parse_yaml(text, source)


def line_of(doc: Any, path: tuple) -> int | None:
    """The line of the deepest key of ``path`` that ``doc`` recorded, if any."""
    line = None
    node = doc
    for key in path:
        if isinstance(node, _LineDict) and key in node:
            line = node.lines.get(key, line)
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            break
    return line


# ---------------------------------------------------------------------------------------
# Schema building blocks

PosInt = Annotated[int, Field(strict=True, gt=0)]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
Precision = Literal["fp32", "tf32", "fp16", "bf16", "fp8"]

#: Bytes per element of each precision.
PRECISION_BYTES: dict[str, int] = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1}


class Strict(BaseModel):
    """Base of every schema: frozen, unknown keys forbidden, no NaN/inf."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False,
                              populate_by_name=True, validate_default=True)


# ---------------------------------------------------------------------------------------
# Workload


class ModelSpec(Strict):
    """Transformer shape. Sizes are element counts; ``seq_len`` is tokens per sequence."""

    kind: Literal["gpt", "bert"] = "gpt"
    layers: PosInt
    hidden: PosInt
    heads: PosInt
    kv_heads: PosInt | None = None  # default: heads (multi-head attention, no GQA)
    ffn_hidden: PosInt | None = None  # default: 4 * hidden (Vaswani et al. 2017)
    vocab: PosInt
    seq_len: PosInt
    gated_mlp: bool = False
    tied_embeddings: bool = True
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    dropout: bool = True

    @model_validator(mode="after")
    def _shape(self) -> "ModelSpec":
        if self.hidden % self.heads:
            raise ValueError(f"model.hidden: must be divisible by model.heads ({self.heads}), "
                             f"got {self.hidden}")
        if self.kv_heads is not None and (self.kv_heads > self.heads or self.heads % self.kv_heads):
            raise ValueError(f"model.kv_heads: must divide model.heads ({self.heads}), "
                             f"got {self.kv_heads}")
        return self

    @property
    def kv_heads_(self) -> int:
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def ffn(self) -> int:
        return self.ffn_hidden if self.ffn_hidden is not None else 4 * self.hidden

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


class TrainingSpec(Strict):
    """Batch sizes in sequences; precisions name the element type."""

    global_batch: PosInt
    micro_batch: PosInt = 1
    precision: Literal["fp32", "fp16", "bf16", "fp8"] = "bf16"
    optimizer: Literal["adam", "adamw", "sgd", "adafactor", "shampoo"] = "adam"
    # Gradient precision: the ZeRO paper counts 16-bit gradients (2 B/param); Megatron-LM
    # accumulates fp32 main gradients (4 B/param). Default: the ZeRO convention.
    grad_precision: Literal["fp32", "fp16", "bf16"] | None = None
    master_weights: bool = True  # fp32 master copy kept by the optimizer in mixed precision

    @property
    def grad_precision_(self) -> str:
        if self.grad_precision is not None:
            return self.grad_precision
        return "fp32" if self.precision == "fp32" else ("bf16" if self.precision == "fp8"
                                                         else self.precision)


class PlanSpec(Strict):
    """Parallelism plan as the user writes it (``dp`` may be ``auto``)."""

    tp: PosInt = 1
    pp: PosInt = 1
    dp: Union[PosInt, Literal["auto"]] = "auto"
    sequence_parallel: bool = False
    zero: Annotated[int, Field(strict=True, ge=0, le=3)] = 0
    recompute: Literal["none", "selective", "full"] = "none"
    schedule: Literal["gpipe", "1f1b", "interleaved"] = "1f1b"
    virtual_stages: PosInt = 1
    stage_layers: tuple[NonNegInt, ...] | None = None
    collective: Literal["auto", "ring", "tree", "hierarchical"] = "auto"
    # PyTorch DDP's default gradient bucket (bucket_cap_mb=25); Li et al., VLDB 2020, Sec. 4.
    dp_bucket_bytes: PosFloat = 25e6
    dp_overlap: bool = True
    # Megatron-LM (Narayanan et al. 2021, Sec. 4.1): split PP sends over the TP ranks'
    # NICs and all-gather inside the node.
    pp_scatter_gather: bool = True
    offload: Literal["none", "optimizer", "optimizer+params"] = "none"


class RunDefaults(Strict):
    """Where a workload runs when the user names no cluster."""

    cluster: str = "dgx-a100"
    devices: PosInt | None = None


class Workload(Strict):
    """One model + training setup + plan (a file under workloads/)."""

    name: str
    source: str | None = None
    model: ModelSpec
    training: TrainingSpec
    plan: PlanSpec = PlanSpec()
    defaults: RunDefaults = RunDefaults()

    _file: str | None = PrivateAttr(default=None)

    @property
    def file(self) -> str:
        return self._file or f"<workload {self.name}>"


# ---------------------------------------------------------------------------------------
# Hardware catalog


class EfficiencySpec(Strict):
    """Achievable fractions of peak, per device kind (see simwall.cost for their use).

    ``gemm_max``: fraction of peak the largest GEMMs reach; ``gemm_half_flop``: GEMM size
    (FLOP) at which half of ``gemm_max`` is reached; ``memory_bw``: fraction of peak memory
    bandwidth reached by streaming kernels; ``launch_s``: fixed per-kernel overhead.
    Each device's YAML cites where its values come from.
    """

    gemm_max: Fraction = 0.8
    gemm_half_flop: NonNegFloat = 0.0
    memory_bw: Fraction = 0.8
    launch_s: NonNegFloat = 0.0


class DeviceSpec(Strict):
    """One accelerator (or CPU socket). Units: FLOP/s, bytes, bytes/s."""

    name: str
    kind: Literal["gpu", "tpu", "cpu"] = "gpu"
    peak_flop_per_s: dict[Precision, PosFloat] = Field(alias="peak_flops")
    memory_capacity_bytes: PosFloat = Field(alias="memory_capacity")
    memory_bandwidth_bytes_per_s: PosFloat = Field(alias="memory_bandwidth")
    efficiency: EfficiencySpec = EfficiencySpec()
    source: str = ""

    def peak(self, precision: str) -> float:
        """Peak dense FLOP/s for ``precision``, falling back to the nearest wider type."""
        for p in {"fp8": ("fp8", "fp16", "bf16"), "fp16": ("fp16", "bf16"),
                  "bf16": ("bf16", "fp16"), "tf32": ("tf32", "fp32"),
                  "fp32": ("fp32",)}[precision]:
            if p in self.peak_flop_per_s:
                return self.peak_flop_per_s[p]
        return self.peak_flop_per_s.get("fp32", min(self.peak_flop_per_s.values()))


class LinkSpec(Strict):
    """One link class. ``bandwidth``: bytes/s per direction; ``latency``: seconds."""

    name: str
    bandwidth_bytes_per_s: PosFloat = Field(alias="bandwidth")
    latency_s: NonNegFloat = Field(alias="latency")
    efficiency: Fraction = 1.0  # achievable fraction of ``bandwidth`` for large transfers
    source: str = ""


# ---------------------------------------------------------------------------------------
# Cluster


class DeviceRef(Strict):
    """A catalog device with some fields replaced (what-if studies)."""

    base: str
    name: str | None = None
    kind: Literal["gpu", "tpu", "cpu"] | None = None
    peak_flop_per_s: dict[Precision, PosFloat] | None = Field(default=None, alias="peak_flops")
    memory_capacity_bytes: PosFloat | None = Field(default=None, alias="memory_capacity")
    memory_bandwidth_bytes_per_s: PosFloat | None = Field(default=None, alias="memory_bandwidth")
    efficiency: EfficiencySpec | None = None


class LinkRef(Strict):
    """A catalog link with some fields replaced."""

    base: str
    bandwidth_bytes_per_s: PosFloat | None = Field(default=None, alias="bandwidth")
    latency_s: NonNegFloat | None = Field(default=None, alias="latency")
    efficiency: Fraction | None = None


LinkChoice = Union[str, LinkRef]


class IntraSpec(Strict):
    """Inside a node: how its devices connect."""

    topology: Literal["nvswitch", "ring", "torus", "none"] = "nvswitch"
    link: LinkChoice = "NVLink3"
    dims: tuple[PosInt, ...] | None = None  # for torus


class InterSpec(Strict):
    """Between nodes (or, for a torus, between all chips)."""

    topology: Literal["fat_tree", "torus", "ring", "none"] = "fat_tree"
    link: LinkChoice = "IB-HDR"
    nics_per_node: PosInt = 8
    oversubscription: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 1.0
    rail_optimized: bool = True
    dims: tuple[PosInt, ...] | None = None  # for torus: chips per dimension
    switch_radix: PosInt = 64


class HostSpec(Strict):
    """The host side of each device: the PCIe link to it and host memory (for offload)."""

    link: LinkChoice = "PCIe4"
    memory_capacity_bytes: PosFloat = Field(default=1.0e12, alias="memory_capacity")
    cpu: str | None = None


class Straggler(Strict):
    device: NonNegInt
    slowdown: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]  # speed factor


class DegradedLink(Strict):
    between: tuple[str, str]
    bandwidth_factor: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]  # 0 = failed


class FaultSpec(Strict):
    stragglers: tuple[Straggler, ...] = ()
    links: tuple[DegradedLink, ...] = ()


class ClusterSpec(Strict):
    """A cluster (a file under topologies/). ``nodes: auto`` sizes it for the plan."""

    name: str
    source: str | None = None
    device: Union[str, DeviceRef] = "A100-SXM4-80GB"
    nodes: Union[PosInt, Literal["auto"]] = "auto"
    devices_per_node: PosInt = 8
    intra: IntraSpec = IntraSpec()
    inter: InterSpec = InterSpec()
    host: HostSpec = HostSpec()
    faults: FaultSpec = FaultSpec()

    _file: str | None = PrivateAttr(default=None)

    @property
    def file(self) -> str:
        return self._file or f"<cluster {self.name}>"


# ---------------------------------------------------------------------------------------
# Validation with located errors

_EXPECT = {
    "int_type": "an integer", "int_parsing": "an integer", "float_type": "a number",
    "float_parsing": "a number", "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string", "dict_type": "a mapping", "model_type": "a mapping",
    "tuple_type": "a list", "list_type": "a list", "finite_number": "a finite number",
}


def _fmt_value(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, (list, tuple)):
        text = "a list"
    return text if len(text) <= 40 else text[:37] + "..."


def _model_at(model: type[BaseModel], path: tuple) -> type[BaseModel] | None:
    """The schema model reached by following ``path`` (field aliases) from ``model``."""
    current: Any = model
    for key in path:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = None
        for name, info in current.model_fields.items():
            if key in (name, info.alias):
                field = info
                break
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in args or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's union-branch labels (``int``, ``literal['auto']``, model names)."""
    out = []
    for part in loc:
        if isinstance(part, str) and (part.startswith(("literal[", "function-"))
                                      or part in ("int", "str", "float", "bool")
                                      or part[:1].isupper()):
            continue
        out.append(part)
    return tuple(out)


def _error_message(err: dict, model: type[BaseModel], loc: tuple) -> str:
    kind = err["type"]
    found = err.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        valid = _keys_of(parent) if parent else []
        near = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        return f"unknown key{hint} (valid keys: {', '.join(valid)})"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"expected one of {expected}, got {_fmt_value(found)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ctx = err.get("ctx", {})
        bound = {"greater_than": f"> {ctx.get('gt')}", "greater_than_equal": f">= {ctx.get('ge')}",
                 "less_than": f"< {ctx.get('lt')}", "less_than_equal": f"<= {ctx.get('le')}"}[kind]
        return f"expected a number {bound}, got {_fmt_value(found)}"
    if kind == "value_error":
        msg = str(err.get("ctx", {}).get("error", err["msg"]))
        return msg
    if isinstance(found, float) and not math.isfinite(found):
        return f"expected a finite number, got {found}"
    expected = _EXPECT.get(kind)
    if expected:
        return f"expected {expected}, got {_fmt_value(found)}"
    return f"{err['msg'].rstrip('.').lower()}, got {_fmt_value(found)}"


def validate(model: type[BaseModel], doc: Any, source: str) -> Any:
    """Validate raw ``doc`` against ``model``; the first error becomes a ConfigError."""
    if doc is None:
        raise ConfigError(source, None, "empty file, expected a mapping")
    if not isinstance(doc, dict):
        raise ConfigError(source, None, f"expected a mapping at the top, got {_fmt_value(doc)}")
    try:
        obj = model.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors()
        # Prefer the most specific (longest) location: union branches add noise.
        err = errors[0]
        loc = _clean_loc(err["loc"])
        msg = _error_message(err, model, loc)
        key = ".".join(str(p) for p in loc) or None
        if err["type"] == "value_error" and re.match(r"^[a-z_]+\.[a-z_.]+: ", msg):
            key, msg = msg.split(": ", 1)
        raise ConfigError(source, key, msg, line=line_of(doc, loc)) from None
    except RecursionError:
        raise ConfigError(source, None, "nested too deeply") from None
    obj._file = source if hasattr(obj, "_file") else None
    return obj


# ---------------------------------------------------------------------------------------
# Bundled files and overrides

_BUNDLED = {"workload": "workloads", "cluster": "topologies", "catalog": "catalog"}


def _bundled_dir(kind: str) -> Path:
    folder = _BUNDLED[kind]
    try:
        path = Path(str(resources.files(f"simwall.{folder}")))
        if path.is_dir() and any(path.glob("*.yaml")):
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    # Source checkout without install: the folders sit beside the package.
    here = Path(__file__).resolve().parent
    for candidate in (here / folder, here.parent / folder):
        if candidate.is_dir():
            return candidate
    raise ConfigError(None, None, f"bundled {folder}/ not found (broken install?)")


def bundled_names(kind: str) -> list[str]:
    """Names of the bundled files of ``kind`` ('workload', 'cluster', 'catalog')."""
    return sorted(p.stem for p in _bundled_dir(kind).glob("*.yaml"))


def find_file(kind: str, name_or_path: str) -> Path:
    """A path for a bundled name or an existing file path; else a ConfigError."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in name_or_path:
        if p.is_file():
            return p
        raise ConfigError(str(name_or_path), None, "no such file")
    candidate = _bundled_dir(kind) / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    names = bundled_names(kind)
    near = difflib.get_close_matches(name_or_path, names, n=1, cutoff=0.4)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    raise ConfigError(None, kind, f"no bundled {kind} or file named '{name_or_path}'{hint} "
                      f"(bundled: {', '.join(names)})")


def display_path(path: Path) -> str:
    """``path`` as the user should read it: relative to the bundle or the cwd."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        pass
    for folder in ("workloads", "topologies", "catalog"):
        if path.parent.name == folder:
            return f"{folder}/{path.name}"
    return str(path)


def parse_set(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key path, YAML-typed value)."""
    if "=" not in item:
        raise ConfigError("--set", item, "expected KEY=VALUE, e.g. plan.tp=4")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError("--set", item, "expected KEY=VALUE with a dotted key, e.g. plan.tp=4")
    value = parse_yaml(raw, f"--set {key}") if raw.strip() else ""
    return key, value


# Keys whose string value is shorthand for ``{base: value}`` when a sub-key is set.
_REF_KEYS = {"device", "link"}


def apply_overrides(doc: Any, overrides: list[tuple[str, Any]], source: str) -> Any:
    """A copy of raw ``doc`` with each (dotted key, value) set; validate afterwards."""
    import copy

    out = copy.deepcopy(doc) if doc is not None else {}
    if not isinstance(out, dict):
        return out
    for key, value in overrides:
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if isinstance(nxt, str) and part in _REF_KEYS:
                nxt = {"base": nxt}
            elif nxt is None:
                nxt = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"--set {key}", ".".join(parts[:i + 1]),
                                  f"is {_fmt_value(nxt)}, not a mapping")
            node[part] = nxt
            node = nxt
        node[parts[-1]] = value
    return out


def split_overrides(items: list[str]) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Split ``--set`` items into (workload overrides, cluster overrides)."""
    workload, cluster = [], []
    for item in items:
        key, value = parse_set(item)
        if key.startswith("cluster."):
            cluster.append((key[len("cluster."):], value))
        else:
            workload.append((key, value))
    return workload, cluster


def load_workload(name_or_path: str, overrides: list[tuple[str, Any]] = ()) -> Workload:
    """Load a workload by bundled name or path, apply overrides, validate."""
    path = find_file("workload", name_or_path)
    source = display_path(path)
    doc = apply_overrides(load_yaml(path), list(overrides), source)
    return validate(Workload, doc, source)


def load_cluster(name_or_path: str, overrides: list[tuple[str, Any]] = ()) -> ClusterSpec:
    """Load a cluster by bundled name or path, apply overrides, validate."""
    path = find_file("cluster", name_or_path)
    source = display_path(path)
    doc = apply_overrides(load_yaml(path), list(overrides), source)
    return validate(ClusterSpec, doc, source)
