"""What a simulated step gives: :class:`StepResult` and its views, one module each:
text table, JSON, Chrome trace, flat records and their files."""

from .formats import render
from .jsonview import as_dict
from .records import (
    RESERVED_COLUMNS,
    columns,
    estimate_record,
    flat_record,
    read_records,
    write_csv,
    write_records,
)
from .result import BREAKDOWN_KEYS, StepResult
from .table import render as render_table
from .trace import chrome_trace

__all__ = [
    "BREAKDOWN_KEYS",
    "RESERVED_COLUMNS",
    "StepResult",
    "as_dict",
    "chrome_trace",
    "columns",
    "estimate_record",
    "flat_record",
    "read_records",
    "render",
    "render_table",
    "write_csv",
    "write_records",
]
