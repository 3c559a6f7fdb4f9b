"""simwall: a discrete-event simulator of distributed deep-learning training.

>>> import simwall
>>> r = simwall.simulate("gpt3-175b", **{"plan.tp": 4})       # doctest: +SKIP
>>> records = list(simwall.sweep({"workload": "gpt2"}, {"plan.tp": [1, 2]}))  # doctest: +SKIP
>>> simwall.clear_caches()    # forget every memoised value (cold-start timings, tests)
>>> simwall.write_records("tp.csv", records)                     # doctest: +SKIP
"""

from .errors import ConfigError, SimwallError
from .memo import clear_caches

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "SimwallError",
    "StepResult",
    "__version__",
    "clear_caches",
    "read_records",
    "simulate",
    "sweep",
    "write_records",
]


def __getattr__(name: str):
    # Lazy: ``import simwall`` stays cheap for the CLI's --help and for worker processes.
    if name == "simulate":
        from .api import simulate
        return simulate
    if name == "sweep":
        # The function, always: the module is simwall.studies.sweeps, so importing it
        # never rebinds simwall.sweep (in the old layout simwall/sweep.py did).
        from .studies.sweeps import sweep
        return sweep
    if name == "StepResult":
        from .report import StepResult
        return StepResult
    if name == "write_records":
        from .report import write_records
        return write_records
    if name == "read_records":
        from .report import read_records
        return read_records
    raise AttributeError(f"module 'simwall' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names too, so tab completion offers simwall.simulate and the rest.
    return sorted(set(globals()) | set(__all__))
