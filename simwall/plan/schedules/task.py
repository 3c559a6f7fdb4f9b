"""One task of a pipeline stage: ``(pass_, micro_batch, local_chunk)``, ``pass_`` 'F'
(forward) or 'B' (backward; the input gradient alone when the schedule also has 'W', the
weight gradient); ``local_chunk`` counts the stage's own model chunks."""

from __future__ import annotations

__all__ = ["Task"]

Task = tuple[str, int, int]
