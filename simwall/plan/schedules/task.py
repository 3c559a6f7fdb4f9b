"""One task of a pipeline stage: ``(pass_, micro_batch, local_chunk)``, ``pass_`` 'F'
(forward) or 'B' (backward); ``local_chunk`` counts the stage's own model chunks."""

from __future__ import annotations

__all__ = ["Task"]

Task = tuple[str, int, int]
