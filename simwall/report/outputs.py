"""Files simwall writes (a trace, a plot, a sweep's results and its journal): checked
before any work starts, and written so that a failure is one located ConfigError.

Every output flag (``run --trace``, ``--plot``, ``plot -o``, ``sweep -o``) goes through
:func:`check_output_path` before the simulation starts, so a typo in a directory name
costs nothing; :func:`write_text` and :func:`output_error` turn what can still fail at
write time (a full disk, ``/dev/full``) into the same one-line error.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

__all__ = ["check_output_path", "output_error", "write_text"]


def output_error(flag: str, path: str | Path, err: OSError | str) -> ConfigError:
    """The one-line error of output ``path`` (given with ``flag``) that cannot be
    written: ``--trace: cannot write 'x/t.json': No such file or directory``."""
    reason = err if isinstance(err, str) else (err.strerror or str(err))
    return ConfigError(flag, None, f"cannot write '{path}': {reason}")


def check_output_path(path: str | Path, flag: str, replace: bool = False) -> Path:
    """``path`` as a :class:`~pathlib.Path` if a file can be written there, else a
    ConfigError naming ``flag`` and the path: its directory must exist and be a
    directory we may write in, and the path itself must not be a directory. Nothing is
    created. ``replace``: the file is written beside and renamed into place (sweep
    results), so the directory must be writable even when the file exists."""
    p = Path(path)
    parent = p.parent
    try:
        os.fsencode(p)  # pathlib's checks say False, not why, for an unencodable name
        if p.is_dir():
            raise output_error(flag, path, "is a directory")
        if not parent.exists():
            raise output_error(flag, path, f"directory '{parent}' does not exist")
        if not parent.is_dir():
            raise output_error(flag, path, f"'{parent}' is not a directory")
        if p.exists() and not replace:
            writable = os.access(p, os.W_OK)
        else:
            writable = os.access(parent, os.W_OK | os.X_OK)
        if not writable:
            raise output_error(flag, path, "permission denied")
    except UnicodeEncodeError:
        # A lone surrogate (e.g. '\ud800') cannot become a file name on this system.
        raise output_error(flag, path, "not a valid file name (it cannot be encoded)") from None
    except OSError as err:  # e.g. a name too long for the file system
        raise output_error(flag, path, err) from None
    return p


def write_text(path: str | Path, text: str, flag: str) -> None:
    """Write ``text`` (UTF-8) to ``path``; any OSError (no space left, ...) becomes
    the one-line error of :func:`output_error`."""
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except (OSError, UnicodeEncodeError) as err:
        reason = err if isinstance(err, OSError) else "not a valid file name"
        raise output_error(flag, path, reason) from None
