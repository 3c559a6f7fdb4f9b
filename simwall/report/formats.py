"""A step rendered in a named output format (``simwall run --format NAME``).

The formats are the entries of :data:`simwall.registry.OUTPUT_FORMATS`, each a
``render(result) -> str`` in its own module of this package (:mod:`.table`,
:mod:`.jsonview`). Adding a format is one new module plus one registry entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..registry import OUTPUT_FORMATS

if TYPE_CHECKING:  # only for the annotation; a format module imports what it needs
    from .result import StepResult

__all__ = ["render"]


def render(result: StepResult, fmt: str = "table") -> str:
    """``result`` as text in the output format ``fmt`` (no final newline). An unknown
    ``fmt`` is a ConfigError located at ``--format``."""
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError("--format", None, f"unknown output format '{fmt}' (choose from "
                          f"{', '.join(OUTPUT_FORMATS.choices())})")
    return OUTPUT_FORMATS[fmt](result)
