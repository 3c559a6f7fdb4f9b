"""The hardware catalog: devices and link classes with cited specs, and what-if variants.

The catalog is bundled YAML (``simwall/catalog/devices.yaml`` and ``links.yaml``); every
number there names its source. A cluster names a catalog entry or overrides fields of
one (``device: {base: H100-SXM5-80GB, memory_bandwidth: 6.0e12}``).
"""

from __future__ import annotations

import difflib
from functools import lru_cache

from .config import (DeviceRef, DeviceSpec, LinkRef, LinkSpec, _bundled_dir, load_yaml,
                     validate)
from .errors import ConfigError

__all__ = ["devices", "links", "get_device", "get_link", "resolve_device", "resolve_link"]


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


@lru_cache(maxsize=None)
def _catalog(kind: str) -> dict[str, DeviceSpec | LinkSpec]:
    model = DeviceSpec if kind == "devices" else LinkSpec
    path = _bundled_dir("catalog") / f"{kind}.yaml"
    doc = load_yaml(path)
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
        out[item.name] = item
    return out


def devices() -> dict[str, DeviceSpec]:
    """All catalog devices by name."""
    return dict(_catalog("devices"))  # type: ignore[arg-type]


def links() -> dict[str, LinkSpec]:
    """All catalog link classes by name."""
    return dict(_catalog("links"))  # type: ignore[arg-type]


def _lookup(kind: str, name: str, key: str, source: str | None):
    table = _catalog(kind)
    if name in table:
        return table[name]
    by_norm = {_norm(k): v for k, v in table.items()}
    if _norm(name) in by_norm:
        return by_norm[_norm(name)]
    near = difflib.get_close_matches(name, list(table), n=1, cutoff=0.4)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    raise ConfigError(source, key, f"unknown {kind[:-1]} '{name}'{hint} "
                      f"(see 'simwall list {kind}')")


def get_device(name: str, key: str = "device", source: str | None = None) -> DeviceSpec:
    """A catalog device by name (case and punctuation are ignored)."""
    return _lookup("devices", name, key, source)


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
    if "name" not in update:
        changed = sorted(update)
        update["name"] = base.name + (f" ({', '.join(changed)} changed)" if changed else "")
    if "efficiency" in update:
        update["efficiency"] = ref.efficiency
    return base.model_copy(update=update)


def resolve_link(ref: str | LinkRef, key: str = "link", source: str | None = None) -> LinkSpec:
    """The link class a cluster names: a catalog entry, or one with fields replaced."""
    if isinstance(ref, str):
        return get_link(ref, key, source)
    base = get_link(ref.base, f"{key}.base", source)
    update = {k: v for k, v in ref.model_dump(exclude={"base"}).items() if v is not None}
    return base.model_copy(update=update)
