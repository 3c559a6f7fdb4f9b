"""The hardware catalog: devices and link classes with cited specs, and what-if variants.

The catalog is bundled YAML (``simwall/catalog/devices.yaml`` and ``links.yaml``); every
number there names its source. A cluster names a catalog entry or overrides fields of
one (``device: {base: H100-SXM5-80GB, memory_bandwidth: 6.0e12}``).
"""

from __future__ import annotations

import difflib

from ..config import DeviceRef, DeviceSpec, LinkRef, LinkSpec, bundled_dir, load_yaml, validate
from ..errors import ConfigError
from ..memo import memoized

__all__ = ["devices", "get_device", "get_link", "link_base", "links", "resolve_device",
           "resolve_link"]


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


@memoized(maxsize=None)
def _catalog(kind: str) -> dict[str, DeviceSpec | LinkSpec]:
    model = DeviceSpec if kind == "devices" else LinkSpec
    path = bundled_dir("catalog") / f"{kind}.yaml"
    doc = load_yaml(path, bundled=True)
    source = f"catalog/{kind}.yaml"
    if not isinstance(doc, dict) or not isinstance(doc.get(kind), list):
        raise ConfigError(source, kind, "expected a list of entries")
    out: dict[str, DeviceSpec | LinkSpec] = {}
    for i, entry in enumerate(doc[kind]):
        try:
            item = validate(model, entry, source)
        except ConfigError as err:
            raise ConfigError(source, f"{kind}[{i}].{err.key}" if err.key else f"{kind}[{i}]",
                              err.message, err.line) from None
        if not item.source.strip():
            raise ConfigError(source, f"{kind}[{i}].source",
                              f"every catalog entry must cite its source ('{item.name}' has none)")
        if (kind == "devices" and item.kind == "gpu"
                and not item.efficiency.sm_count):
            # No fallback SM count: wave quantisation needs the device's own (issue 14).
            raise ConfigError(source, f"{kind}[{i}].efficiency.sm_count",
                              f"every GPU entry must state its SM count ('{item.name}' has "
                              "none)")
        if kind == "devices" and item.power is not None and item.power.hbm_peak_w is None:
            # The HBM's share of the power limit, fixed with the catalog's bandwidth, so a
            # what-if memory bandwidth leaves the core's share alone (costing.energy).
            item = item.model_copy(update={"power": item.power.model_copy(update={
                "hbm_peak_w": item.power.hbm_pj_per_bit * 1e-12 * 8.0
                * item.memory_bandwidth_bytes_per_s})})
        if item.name in out:
            raise ConfigError(source, f"{kind}[{i}].name", f"duplicate entry '{item.name}'")
        out[item.name] = item
    return out


def devices() -> dict[str, DeviceSpec]:
    """All catalog devices by name."""
    return dict(_catalog("devices"))  # type: ignore[arg-type]


def links() -> dict[str, LinkSpec]:
    """All catalog link classes by name."""
    return dict(_catalog("links"))  # type: ignore[arg-type]


def _suggest(name: str, names: list[str]) -> list[str]:
    """Catalog names the user may have meant: prefix matches first, then close spellings.

    Matching ignores case and punctuation, so 'h100' suggests 'H100-SXM5-80GB'.
    """
    key = _norm(name)
    prefix = [n for n in names if key and _norm(n).startswith(key)]
    if prefix:
        return prefix[:3]
    by_norm = {_norm(n): n for n in names}
    near = difflib.get_close_matches(key, list(by_norm), n=2, cutoff=0.5)
    return [by_norm[n] for n in near]


def _lookup(kind: str, name: str, key: str, source: str | None):
    table = _catalog(kind)
    if name in table:
        return table[name]
    by_norm = {_norm(k): v for k, v in table.items()}
    if _norm(name) in by_norm:
        return by_norm[_norm(name)]
    near = _suggest(name, list(table))
    hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
    raise ConfigError(source, key, f"unknown {kind[:-1]} '{name}'{hint} "
                      f"(see 'simwall list {kind}')")


def get_device(name: str, key: str = "device", source: str | None = None) -> DeviceSpec:
    """A catalog device by name (case and punctuation are ignored): a copy whose
    ``peak_flops`` mapping (its one mutable field) is the caller's own, so no caller can
    change the catalog entry every later run reads."""
    entry = _lookup("devices", name, key, source)
    return entry.model_copy(update={"peak_flop_per_s": dict(entry.peak_flop_per_s)})


def get_link(name: str, key: str = "link", source: str | None = None) -> LinkSpec:
    """A catalog link class by name (case and punctuation are ignored)."""
    return _lookup("links", name, key, source)


def resolve_device(ref: str | DeviceRef, key: str = "device",
                   source: str | None = None) -> DeviceSpec:
    """The device a cluster names: a catalog entry, or one with fields replaced."""
    if isinstance(ref, str):
        return get_device(ref, key, source)
    base = get_device(ref.base, f"{key}.base", source)
    update = {k: v for k, v in ref.model_dump(exclude={"base"}).items() if v is not None}
    if "peak_flop_per_s" in update:
        # A what-if names only the precisions it changes; the others keep the base values.
        update["peak_flop_per_s"] = {**base.peak_flop_per_s, **update["peak_flop_per_s"]}
    if "efficiency" in update:
        # A what-if names only the efficiency fields it changes (the SM count stays).
        given = ref.efficiency
        update["efficiency"] = base.efficiency.model_copy(
            update={f: getattr(given, f) for f in given.model_fields_set})
    if "name" not in update:
        changed = sorted(_ALIAS.get(k, k) for k in update)
        update["name"] = base.name + (f" ({', '.join(changed)} changed)" if changed else "")
    if "power" in update:
        update["power"] = ref.power  # a PowerSpec, not its dump (all its fields are given)
    return base.model_copy(update=update)


# Field name -> the key users write in YAML (for what-if names).
_ALIAS = {name: info.alias for name, info in DeviceSpec.model_fields.items() if info.alias}


def link_base(ref: str | LinkRef) -> str:
    """The catalog name a link choice stands on: the name, or a what-if mapping's
    ``base``."""
    return ref if isinstance(ref, str) else ref.base


def resolve_link(ref: str | LinkRef, key: str = "link", source: str | None = None) -> LinkSpec:
    """The link class a cluster names: a catalog entry, or one with fields replaced."""
    if isinstance(ref, str):
        return get_link(ref, key, source)
    base = get_link(ref.base, f"{key}.base", source)
    update = {k: v for k, v in ref.model_dump(exclude={"base"}).items() if v is not None}
    return base.model_copy(update=update)
