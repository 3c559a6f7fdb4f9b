"""Devices and links: the cited catalog (:mod:`.catalog`) and what fraction of their peaks
kernels reach (:mod:`.efficiency`)."""

from .catalog import devices, get_device, get_link, links, resolve_device, resolve_link
from .efficiency import FALLBACK, device_roofs, efficiency_of, gemm_efficiency

__all__ = ["FALLBACK", "device_roofs", "devices", "efficiency_of", "gemm_efficiency",
           "get_device", "get_link", "links", "resolve_device", "resolve_link"]
