"""What a simulated step gives: :class:`StepResult` and its views (table, JSON, Chrome
trace, flat records)."""

from .result import BREAKDOWN_KEYS, StepResult, chrome_trace, render_table

__all__ = ["BREAKDOWN_KEYS", "StepResult", "chrome_trace", "render_table"]
