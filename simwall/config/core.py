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

import copy
import difflib
import math
import re
import types
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ..errors import ConfigError

__all__ = [
    "PRECISION_BYTES",
    "ClusterSpec",
    "DegradedLink",
    "DeviceSpec",
    "EfficiencySpec",
    "FaultSpec",
    "HostSpec",
    "InterSpec",
    "IntraSpec",
    "LinkSpec",
    "ModelSpec",
    "PlanSpec",
    "Straggler",
    "TrainingSpec",
    "Workload",
    "apply_overrides",
    "bundled_names",
    "display_path",
    "find_file",
    "key_path",
    "line_of",
    "load_cluster",
    "load_workload",
    "load_yaml",
    "parse_set",
    "parse_yaml",
    "split_overrides",
    "validate",
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
    """A mapping that remembers the line (1-based) of each of its keys.

    The top-level mapping of a document edited by ``--set`` also lists the edited key
    paths in ``overridden``, so errors about them do not point at a line of the file.
    """

    lines: dict[Any, int]
    overridden: tuple[tuple[str, ...], ...] = ()


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
        return yaml.load(text, Loader=_Loader)
    except ConfigError as err:
        raise err.with_source(source) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = err.problem or err.context or "invalid YAML"
        ctx = err.context_mark
        if err.problem and err.context and ctx is not None and ctx.line + 1 != line:
            # Where the unclosed bracket or block began often is the real mistake.
            problem += f" ({err.context} at line {ctx.line + 1})"
        raise ConfigError(source, None, f"invalid YAML: {' '.join(problem.split())}",
                          line=line) from None
    except yaml.reader.ReaderError as err:
        # Control characters (NUL, ...): most likely a binary file, not YAML.
        line = text.count("\n", 0, err.position) + 1
        raise ConfigError(source, None, f"not a YAML text file (control character "
                          f"#x{err.character:04x})" if isinstance(err.character, int) else
                          f"{err.character!r})", line=line) from None
    except yaml.YAMLError as err:
        raise ConfigError(source, None, f"invalid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise ConfigError(source, None, "invalid YAML: nested too deeply") from None
    except ValueError:
        # int() of a number with more than 4,300 digits (CPython's conversion limit).
        raise ConfigError(source, None, "invalid YAML: a number too long to read "
                          "(more than 4,300 digits)") from None


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
    # A sweep loads the same few files for every point: parse each text once, hand out
    # copies (callers apply overrides to what they get).
    return copy.deepcopy(_parse_cached(text, source))


@lru_cache(maxsize=256)
def _parse_cached(text: str, source: str) -> Any:
    return parse_yaml(text, source)


def key_path(path: Any) -> str | None:
    """The key path users read in errors: mapping keys joined by dots, list items as
    ``[i]`` (``("faults", "stragglers", 0, "device")`` -> ``faults.stragglers[0].device``;
    docs/errors.md). None for an empty path."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None


_INDEX_RE = re.compile(r"\[(\d+)\]")


def _dotted(key: str) -> str:
    """``faults.stragglers[0].device`` -> ``faults.stragglers.0.device`` (line lookup)."""
    return _INDEX_RE.sub(r".\1", key)


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
# Strict: YAML already types numbers and booleans, so a quoted "8" or a `true` where a
# number belongs is a mistake to report, not to coerce.
PosFloat = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(strict=True, gt=0, le=1, allow_inf_nan=False)]
Bool = Annotated[bool, Field(strict=True)]
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
    gated_mlp: Bool = False
    tied_embeddings: Bool = True
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    dropout: Bool = True

    @model_validator(mode="after")
    def _shape(self) -> ModelSpec:
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
    master_weights: Bool = True  # fp32 master copy kept by the optimizer in mixed precision

    @property
    def weight_precision(self) -> str:
        """The dtype weights (and activations) are stored in. FP8 training keeps 16-bit
        weights and casts them to FP8 per GEMM (Micikevicius et al. 2022, "FP8 Formats for
        Deep Learning", Sec. 4: higher-precision master weights; NVIDIA Transformer
        Engine's default). An approximation: weights stored in bf16."""
        return "bf16" if self.precision == "fp8" else self.precision

    @property
    def weight_bytes(self) -> int:
        """Bytes per stored weight element (:attr:`weight_precision`)."""
        return PRECISION_BYTES[self.weight_precision]

    @property
    def grad_precision_(self) -> str:
        if self.grad_precision is not None:
            return self.grad_precision
        return "fp32" if self.precision == "fp32" else self.weight_precision


class PlanSpec(Strict):
    """Parallelism plan as the user writes it (``dp`` may be ``auto``)."""

    tp: PosInt = 1
    pp: PosInt = 1
    dp: PosInt | Literal["auto"] = "auto"
    sequence_parallel: Bool = False
    zero: Annotated[int, Field(strict=True, ge=0, le=3)] = 0
    recompute: Literal["none", "selective", "full"] = "none"
    schedule: Literal["gpipe", "1f1b", "interleaved"] = "1f1b"
    virtual_stages: PosInt = 1
    stage_layers: tuple[NonNegInt, ...] | None = None
    collective: Literal["auto", "ring", "tree", "hierarchical"] = "auto"
    # PyTorch DDP's default gradient bucket (bucket_cap_mb=25); Li et al., VLDB 2020, Sec. 4.
    dp_bucket_bytes: PosFloat = 25e6
    dp_overlap: Bool = True
    # Megatron-LM (Narayanan et al. 2021, Sec. 4.1): split PP sends over the TP ranks'
    # NICs and all-gather inside the node.
    pp_scatter_gather: Bool = True
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
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    @property
    def file(self) -> str:
        return self._file or f"<workload {self.name}>"

    def line(self, key: str) -> int | None:
        """The line of ``key`` (``plan.tp``, ``faults.stragglers[0].device``) in the file
        (None if absent or set by ``--set``)."""
        return self._lines.get(_dotted(key))


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
    sm_count: NonNegInt = 0  # compute units a GEMM's tiles spread over (wave quantisation); 0: off
    gemm_tile: NonNegInt = 0  # GEMM output tile edge in elements (tile quantisation); 0: off


class DeviceSpec(Strict):
    """One accelerator (or CPU socket). Units: FLOP/s, bytes, bytes/s."""

    name: str
    kind: Literal["gpu", "tpu", "cpu"] = "gpu"
    peak_flop_per_s: dict[Precision, PosFloat] = Field(alias="peak_flops")
    memory_capacity_bytes: PosFloat = Field(alias="memory_capacity")
    memory_bandwidth_bytes_per_s: PosFloat = Field(alias="memory_bandwidth")
    efficiency: EfficiencySpec = EfficiencySpec()
    source: str = ""

    _hash: int | None = PrivateAttr(default=None)

    def __hash__(self) -> int:
        # Hashable (for memoised cost functions) although ``peak_flops`` is a dict.
        if self._hash is None:
            self._hash = hash(self.model_dump_json())
        return self._hash

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

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        # A what-if device is named after its base and the YAML keys it changes, e.g.
        # "H100-SXM5-80GB (memory_bandwidth changed)", so reports show what was varied.
        if isinstance(data, dict) and data.get("name") is None and isinstance(
                data.get("base"), str):
            changed = sorted(str(k) for k, v in data.items()
                             if k not in ("base", "name") and v is not None)
            if changed:
                data = {**data, "name": f"{data['base']} ({', '.join(changed)} changed)"}
        return data


class LinkRef(Strict):
    """A catalog link with some fields replaced."""

    base: str
    bandwidth_bytes_per_s: PosFloat | None = Field(default=None, alias="bandwidth")
    latency_s: NonNegFloat | None = Field(default=None, alias="latency")
    efficiency: Fraction | None = None


LinkChoice = Union[str, LinkRef]


class IntraSpec(Strict):
    """Inside a node: how its devices connect."""

    topology: Literal["nvswitch", "mesh", "ring", "torus", "none"] = "nvswitch"
    link: LinkChoice = "NVLink3"
    dims: tuple[PosInt, ...] | None = None  # for torus


class InterSpec(Strict):
    """Between nodes (or, for a torus, between all chips)."""

    topology: Literal["fat_tree", "torus", "ring", "none"] = "fat_tree"
    link: LinkChoice = "IB-HDR"
    nics_per_node: PosInt = 8
    oversubscription: Annotated[float, Field(strict=True, ge=1, allow_inf_nan=False)] = 1.0
    rail_optimized: Bool = True
    dims: tuple[PosInt, ...] | None = None  # for torus: chips per dimension
    switch_radix: PosInt = 64


class HostSpec(Strict):
    """The host side of each device: the PCIe link to it and host memory (for offload)."""

    link: LinkChoice = "PCIe4"
    memory_capacity_bytes: PosFloat = Field(default=1.0e12, alias="memory_capacity")
    cpu: str | None = None


class Straggler(Strict):
    device: NonNegInt
    slowdown: Annotated[float, Field(strict=True, gt=0, le=1, allow_inf_nan=False)]  # speed factor


class DegradedLink(Strict):
    between: tuple[str, str]
    bandwidth_factor: Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]  # 0 = failed


class FaultSpec(Strict):
    stragglers: tuple[Straggler, ...] = ()
    links: tuple[DegradedLink, ...] = ()


class ClusterSpec(Strict):
    """A cluster (a file under topologies/). ``nodes: auto`` sizes it for the plan."""

    name: str
    source: str | None = None
    device: str | DeviceRef = "A100-SXM4-80GB"
    nodes: PosInt | Literal["auto"] = "auto"
    devices_per_node: PosInt = 8
    intra: IntraSpec = IntraSpec()
    inter: InterSpec = InterSpec()
    host: HostSpec = HostSpec()
    faults: FaultSpec = FaultSpec()

    _file: str | None = PrivateAttr(default=None)
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    @property
    def file(self) -> str:
        return self._file or f"<cluster {self.name}>"

    def line(self, key: str) -> int | None:
        """The line of ``key`` (``plan.tp``, ``faults.stragglers[0].device``) in the file
        (None if absent or set by ``--set``)."""
        return self._lines.get(_dotted(key))


# ---------------------------------------------------------------------------------------
# Validation with located errors
#
# pydantic reports each failure with a location (``loc``) through the schema. Inside a
# union (``dp: int | 'auto'``, ``device: name | {base: ...}``) that location also carries
# a label per branch (``constrained-int``, ``DeviceRef``) and there is one error per
# branch. The helpers below walk the schema alongside ``loc`` so they know which parts
# are branch labels, which type each key expects, and which branch the user meant.


def _unwrap(tp: Any, meta: tuple = ()) -> tuple[Any, tuple]:
    """Strip ``Annotated`` (collecting its constraints) and ``Optional`` from ``tp``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            base, *extra = get_args(tp)
            for item in extra:
                meta += tuple(getattr(item, "metadata", None) or (item,))
            tp = base
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp, meta


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_args(tp: Any) -> list | None:
    if get_origin(tp) in (Union, types.UnionType):
        return [a for a in get_args(tp) if a is not type(None)]
    return None


def _field(model: type[BaseModel], key: Any) -> Any:
    """(annotation, constraints) of ``model``'s field named or aliased ``key``, or None."""
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return _unwrap(info.annotation, tuple(info.metadata))
    return None


def _label_matches(arg: Any, label: str) -> bool:
    tp, _ = _unwrap(arg)
    if _is_model(tp):
        return label == tp.__name__
    if get_origin(tp) is Literal:
        return label.startswith("literal[")
    name = getattr(tp, "__name__", "")
    return label in (name, f"constrained-{name}") or label.startswith(f"{name}[")


class _Walk:
    """One pydantic error location read against the schema.

    ``path``: the user's key path (branch labels dropped); ``types``: the expected
    (annotation, constraints) at each step of ``path`` (inside a union: the branch this
    error came from); ``union``: (index into ``path`` just past the first union, its
    branches, the branch this error came from, the union's own (annotation,
    constraints)) or None.
    """

    def __init__(self, model: type[BaseModel], loc: tuple) -> None:
        self.root = model
        self.path: list = []
        self.types: list = []
        self.union: tuple | None = None
        current: Any = (model, ())
        for part in loc:
            tp = current[0] if current else None
            branches = _union_args(tp) if tp is not None else None
            if branches is not None and isinstance(part, str):
                chosen = next((b for b in branches if _label_matches(b, part)), None)
                if self.union is None:
                    self.union = (len(self.path), branches, chosen, current)
                current = _unwrap(chosen, current[1]) if chosen is not None else None
                if self.types:
                    self.types[-1] = current
                continue
            if part == "[key]":  # the key of a mapping, not its value, is wrong
                key_tp = get_args(self.types[-2][0])[0] if len(self.types) > 1 and \
                    self.types[-2] and get_origin(self.types[-2][0]) is dict else None
                current = _unwrap(key_tp) if key_tp is not None else None
                self.types[-1] = current
                continue
            self.path.append(part)
            nxt = None
            if tp is not None and _is_model(tp):
                nxt = _field(tp, part)
            elif tp is not None and get_origin(tp) is dict:
                nxt = _unwrap(get_args(tp)[1])
            elif tp is not None and get_origin(tp) in (tuple, list):
                nxt = _unwrap(get_args(tp)[0])
            self.types.append(nxt)
            current = nxt

    @property
    def leaf(self) -> Any:
        return self.types[-1] if self.types else None

    def parent_model(self) -> type[BaseModel] | None:
        parent = self.types[-2] if len(self.types) > 1 else (self.root, ())
        return parent[0] if parent and _is_model(parent[0]) else None


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _describe(spec: Any) -> str:
    """What a value of (annotation, constraints) ``spec`` must be, in words."""
    if spec is None:
        return "a valid value"
    tp, meta = spec
    branches = _union_args(tp)
    if branches is not None:
        return " or ".join(_describe(_unwrap(b)) for b in branches)
    if get_origin(tp) is Literal:
        values = [repr(v) for v in get_args(tp)]
        return values[0] if len(values) == 1 else f"one of {', '.join(values)}"
    if _is_model(tp) or get_origin(tp) is dict:
        return "a mapping"
    if get_origin(tp) in (tuple, list):
        return "a list"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    word = {int: "an integer", float: "a number"}.get(tp)
    if word is None:
        return f"a {getattr(tp, '__name__', 'valid value')}"
    bounds = {k: getattr(m, k) for m in meta for k in ("gt", "ge", "lt", "le")
              if getattr(m, k, None) is not None}
    lo = f"> {_num(bounds['gt'])}" if "gt" in bounds else (
        f">= {_num(bounds['ge'])}" if "ge" in bounds else None)
    hi = f"< {_num(bounds['lt'])}" if "lt" in bounds else (
        f"<= {_num(bounds['le'])}" if "le" in bounds else None)
    if tp is int and "ge" in bounds and "le" in bounds:
        return f"{word} from {bounds['ge']} to {bounds['le']}"
    if lo and hi:
        return f"{word} {lo} and {hi}"
    return f"{word} {lo or hi}" if (lo or hi) else word


def _fmt_value(value: Any) -> str:
    """``value`` as the user wrote it in YAML, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null (empty)"
    elif isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, (list, tuple)):
        text = "a list"
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = _num(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _value_at(doc: Any, path: list) -> Any:
    node = doc
    for key in path:
        if isinstance(node, dict) and key in node or isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return None
    return node


def _unknown_key(key: Any, model: type[BaseModel] | None) -> str:
    valid = _keys_of(model) if model else []
    near = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
    if near:
        return f"unknown key; did you mean '{near[0]}'?"
    return f"unknown key (valid keys: {', '.join(valid)})" if valid else "unknown key"


def _pick(errors: list[dict], model: type[BaseModel], doc: Any) -> tuple[list, str]:
    """The (key path, message) to report for the first failure in ``errors``."""
    err = errors[0]
    walk = _Walk(model, err["loc"])
    if walk.union is not None:
        at, branches, _, union_spec = walk.union
        path = walk.path[:at]
        value = _value_at(doc, path)
        models = [b for b in branches if _is_model(_unwrap(b)[0])]
        if isinstance(value, dict) and models:
            # A mapping was written, so the user meant the mapping branch: report its error.
            for other in errors:
                w = _Walk(model, other["loc"])
                if w.union and w.union[0] == at and w.path[:at] == path \
                        and w.union[2] is not None and _is_model(_unwrap(w.union[2])[0]):
                    return _message(other, w)
        return path, f"expected {_describe(union_spec)}, got {_fmt_value(value)}"
    return _message(err, walk)


def _message(err: dict, walk: _Walk) -> tuple[list, str]:
    kind, found, path = err["type"], err.get("input"), walk.path
    if kind == "extra_forbidden":
        return path, _unknown_key(path[-1], walk.parent_model())
    if kind == "missing":
        return path, f"required key is missing (expected {_describe(walk.leaf)})"
    if kind == "value_error":
        msg = str(err.get("ctx", {}).get("error", err["msg"]))
        # Cross-field checks name their own key: "model.kv_heads: must divide ...".
        match = re.match(r"^([a-z_]+(?:\.[a-z_]+)*): (.*)$", msg)
        if match:
            return match.group(1).split("."), match.group(2)
        return path, msg
    if walk.leaf is not None:
        if isinstance(found, float) and not math.isfinite(found):
            return path, f"expected a finite number, got {_fmt_value(found)}"
        return path, f"expected {_describe(walk.leaf)}, got {_fmt_value(found)}"
    return path, f"{err['msg'].rstrip('.').lower()}, got {_fmt_value(found)}"


def _flat_lines(doc: Any, prefix: tuple = ()) -> dict[str, int]:
    """Dotted key path -> line, for every key ``doc`` recorded."""
    out: dict[str, int] = {}
    if isinstance(doc, dict):
        lines = getattr(doc, "lines", {})
        for key, value in doc.items():
            path = prefix + (key,)
            if key in lines:
                out[".".join(map(str, path))] = lines[key]
            out.update(_flat_lines(value, path))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out.update(_flat_lines(value, prefix + (i,)))
    return out


def _from_set(doc: Any, path: list) -> bool:
    """Whether key ``path`` (or a mapping above it) was written by ``--set``."""
    keys = getattr(doc, "overridden", ())
    dotted = [str(p) for p in path]
    return any(dotted[:len(k)] == list(k) or list(k)[:len(dotted)] == dotted for k in keys)


def validate(model: type[BaseModel], doc: Any, source: str) -> Any:
    """Validate raw ``doc`` against ``model``; the first error becomes a ConfigError.

    The error names ``source``, the line of the key when the file recorded one (not
    when ``--set`` wrote it), the key path and what was expected versus found.
    """
    if doc is None:
        raise ConfigError(source, None, "empty file, expected a mapping")
    if not isinstance(doc, dict):
        raise ConfigError(source, None, f"expected a mapping at the top, got {_fmt_value(doc)}")
    try:
        obj = model.model_validate(doc)
    except ValidationError as exc:
        # An unknown key is usually a misspelt required one: report it, not the "missing".
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        path, msg = _pick(errors, model, doc)
        key = key_path(path)
        line = line_of(doc, tuple(path))
        if path and _from_set(doc, path):
            line, msg = None, f"{msg} (from --set)"
        raise ConfigError(source, key, msg, line=line) from None
    except RecursionError:
        raise ConfigError(source, None, "nested too deeply") from None
    if hasattr(obj, "_file"):
        obj._file = source
        obj._lines = {k: v for k, v in _flat_lines(doc).items()
                      if not _from_set(doc, k.split("."))}
    return obj


# ---------------------------------------------------------------------------------------
# Bundled files and overrides

_BUNDLED = {"workload": "workloads", "cluster": "topologies", "catalog": "catalog"}


def bundled_dir(kind: str) -> Path:
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
    return sorted(p.stem for p in bundled_dir(kind).glob("*.yaml"))


def find_file(kind: str, name_or_path: str) -> Path:
    """A path for a bundled name or an existing file path; else a ConfigError."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in name_or_path:
        if p.is_file():
            return p
        raise ConfigError(str(name_or_path), None, "not a file" if p.exists() else "no such file")
    candidate = bundled_dir(kind) / f"{name_or_path}.yaml"
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
    """A copy of raw ``doc`` with each (dotted key, value) set; validate afterwards.

    A catalog reference written as a name (``device: H100-SXM5-80GB``) becomes
    ``{base: H100-SXM5-80GB}`` when a key inside it is set. The edited key paths are
    recorded so that errors about them say ``(from --set)`` instead of citing a line.
    """
    if not isinstance(doc, dict) or not overrides:
        return doc  # validate() reports an empty or non-mapping document
    out = copy.deepcopy(doc)
    if not isinstance(out, _LineDict):
        out = _LineDict(out)
        out.lines = {}
    out.overridden = tuple(tuple(key.split(".")) for key, _ in overrides)
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
                raise ConfigError(source, ".".join(parts[:i + 1]),
                                  f"is {_fmt_value(nxt)}, not a mapping, so --set {key}=... "
                                  f"cannot set a key inside it")
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
