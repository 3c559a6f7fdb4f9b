"""The one root exception of simwall and its located variant for bad input."""

from __future__ import annotations

import unicodedata

__all__ = ["ConfigError", "SimwallError", "printable"]


def printable(text: object) -> str:
    """``text`` safe to print on a terminal: every control, format, surrogate or
    unassigned character (category C: ESC, NUL, a newline, U+202E, a lone surrogate)
    escaped as Python's ``repr`` writes it (``\\x1b``, ``\\n``, ``\\u202e``), so text
    echoed from input can neither drive the terminal nor fail to encode."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(repr(c)[1:-1] if unicodedata.category(c).startswith("C") else c
                   for c in text)



class SimwallError(Exception):
    """Root of every error simwall raises on purpose (bad input, impossible request)."""


class ConfigError(SimwallError):
    """Bad input, located: the file (or source), the key path and what was expected.

    ``str(err)`` is the one line the CLI prints after ``simwall: error:``, e.g.
    ``workloads/x.yaml: plan.tp: must divide model.heads (96), got 7``.
    """

    def __init__(self, source: str | None, key: str | None, message: str,
                 line: int | None = None) -> None:
        self.source = source
        self.key = key
        self.message = message
        self.line = line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = []
        if self.source:
            parts.append(f"{self.source}:{self.line}" if self.line else self.source)
        if self.key:
            parts.append(self.key)
        parts.append(self.message)
        return ": ".join(parts)

    def with_source(self, source: str) -> ConfigError:
        """The same error attributed to ``source`` when it had none."""
        if self.source:
            return self
        return ConfigError(source, self.key, self.message, self.line)
