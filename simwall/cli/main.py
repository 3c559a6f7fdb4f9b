"""The ``simwall`` command: the root parser, the command registry and the error contract.

``main(argv) -> int`` parses, runs one command and returns its exit status. Every
:class:`~simwall.errors.SimwallError` (and every usage error, and Ctrl-C) becomes one line
on stderr, ``simwall: error: <message>``, and exit status 2, with no traceback.

Each command is one module of this package (:data:`COMMANDS`) with ``DESCRIPTION`` (its
``--help`` text, or None), ``add_arguments(parser)`` and ``run(args) -> int``. Only the
module of the command being run is imported; the others appear in the root parser as
their name and one-line help, so ``simwall --help`` imports no command and no library
module.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from types import ModuleType

from ..errors import SimwallError, printable

__all__ = ["COMMANDS", "Command", "build_parser", "command_module", "main"]

_EPILOG = """\
naming: 'simwall check' checks a user's config and plan; 'simwall validate'
compares simwall against published runs.

examples:
  simwall run gpt3-175b --set plan.tp=4 --format json
  simwall show llama3-405b
  simwall topo dgx-a100 --set cluster.nodes=4 --route 0 31
  simwall roofline gpt2 --device A100-SXM4-80GB --mode train
  simwall sweep examples/sweep-tp-pp.yaml -o results.csv
  simwall plan gpt2 --cluster single-node --top 5
  simwall check llama2-7b --set plan.tp=3
  simwall whatif gpt3-175b --scale memory_bandwidth=2
  simwall whatif gpt3-175b --generations 4 --plot generations.png
  simwall design llama2-7b --cluster dgx-a100 --cluster dgx-h100 --set cluster.nodes=2
  simwall plot results.csv --x plan.tp --y step_time_s --hue plan.zero
  simwall validate --format markdown
"""


@dataclass(frozen=True)
class Command:
    """One ``simwall`` command: the module that implements it and its line in the root
    ``--help`` (kept here so listing the commands imports none of them)."""

    module: str
    help: str


#: The commands, in the order ``simwall --help`` lists them.
COMMANDS: dict[str, Command] = {
    "run": Command("simwall.cli.run", "simulate one training step"),
    "list": Command("simwall.cli.list", "list bundled devices, links, topologies or workloads"),
    "show": Command("simwall.cli.show", "print a resolved workload, cluster or device as YAML"),
    "topo": Command("simwall.cli.topo", "build a cluster's topology and describe it"),
    "roofline": Command("simwall.cli.roofline", "per-op roofline of a workload on one device"),
    "sweep": Command("simwall.cli.sweep", "simulate every point of a sweep file"),
    "plan": Command("simwall.cli.plan", "search the parallelism plans of a workload"),
    "check": Command("simwall.cli.check", "check a workload's own plan: valid? fits? rank?"),
    "whatif": Command("simwall.cli.whatif",
                      "scale hardware resources or project generations forward"),
    "design": Command("simwall.cli.design", "compare clusters, each with its best plan "
                      "per workload"),
    "plot": Command("simwall.cli.plot", "plot two columns of sweep results"),
    "collective": Command("simwall.cli.collective", "time one collective like nccl-tests"),
    "validate": Command("simwall.cli.validate", "compare simwall against published runs (not "
                        "'check', which checks your own config)"),
}


def command_module(name: str) -> ModuleType:
    """The module of command ``name`` (imported on first use)."""
    return importlib.import_module(COMMANDS[name].module)


class _UsageError(Exception):
    """argparse's complaint, raised instead of printing usage and exiting."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        # "simwall run" -> "run: ...", so main() prints one "simwall: error:" prefix.
        command = self.prog.partition(" ")[2]
        raise _UsageError(f"{command}: {message}" if command else message)


def build_parser(full: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``simwall``. ``full``: the commands whose own arguments are
    added (their modules imported); the others can be listed but not parsed. None: all."""
    parser = _Parser(prog="simwall", description="Discrete-event simulator of distributed "
                     "deep-learning training: step time and per-device memory.",
                     epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"simwall {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        if full is not None and name not in full:
            sub.add_parser(name, help=command.help)
            continue
        module = command_module(name)
        p = sub.add_parser(name, help=command.help, description=module.DESCRIPTION)
        module.add_arguments(p)
    return parser


#: The options of ``simwall`` itself (before a command).
_ROOT_OPTIONS = ("-h", "--help", "--version")


def _command_named(argv: Sequence[str]) -> tuple[str, ...]:
    """The command ``argv`` asks for: its first word that is not an option (the root
    parser's options take no value), if it names one; else none."""
    for word in argv:
        if not word.startswith("-"):
            return (word,) if word in COMMANDS else ()
    return ()


def _one_line(text: object) -> str:
    """``text`` on one line, safe for a terminal: whitespace runs become one space and
    every other control character is escaped (messages echo what the user typed)."""
    return printable(" ".join(str(text).split()))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``simwall`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = list(argv) if argv is not None else sys.argv[1:]
    parser = build_parser(full=_command_named(argv))
    try:
        if not _command_named(argv):
            # An unknown option before any command: name it, not the missing command.
            unknown = [w for w in argv if w.startswith("-") and w not in _ROOT_OPTIONS]
            if unknown:
                raise _UsageError(f"unrecognized arguments: {' '.join(unknown)} (expected "
                                  f"a command: {', '.join(COMMANDS)})")
        args = parser.parse_args(argv)
    except _UsageError as err:
        print(f"simwall: error: {_one_line(err)} (see 'simwall --help')", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help / --version print and exit 0
        return exit_.code if isinstance(exit_.code, int) else 0
    try:
        return command_module(args.command).run(args)
    except SimwallError as err:
        print(f"simwall: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. 'simwall list devices | head -1'
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback (sweep says how to resume)
        print(f"simwall: error: {args.command}: interrupted", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
