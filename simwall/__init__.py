"""simwall: a discrete-event simulator of distributed deep-learning training."""

from .errors import ConfigError, SimwallError

__version__ = "0.1.0"

__all__ = ["SimwallError", "ConfigError", "__version__"]
