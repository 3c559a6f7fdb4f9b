"""``simwall validate``: simwall's predictions against published runs."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from .progress import add_quiet_option, progress_of

DESCRIPTION = ("Simulate published training runs from their configuration and report "
               "predicted vs published with signed % error, mean |error| and worst per "
               "source, and whether each simulated run fits in memory. Bundled cases: "
               "Megatron-LM SC21 Tables 1 and 2, ZeRO model states, Korthikanti et al. 2022 "
               "activation memory, MosaicML llm-foundry (A100), Megatron-Core (H100), "
               "public FSDP / ZeRO-3 runs (A100), NeMo Llama 3.1 8B with context "
               "parallelism (H100), measured GPU energy and power of OLMo 2 7B and Olmo 3 7B "
               "pre-training (H100).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cases", action="append", metavar="FILE",
                   help="a case file (YAML, format in docs/validation.md); repeatable; "
                        "default: the bundled cases")
    p.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    p.add_argument("--loo", action="store_true",
                   help="also refit the efficiency constants on each file's 'fit' cases "
                        "and report leave-one-out errors (slow: about a minute per file)")
    p.add_argument("--write-coverage", action="store_true",
                   help="also rewrite the coverage table every run's confidence statement "
                        "reads (simwall/cases/coverage.json; bundled cases only)")
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    """Prints the comparison; returns the exit status."""
    from ..studies.validate import (  # by the command, not its parser ('--help')
        bundled_case_files,
        coverage_path,
        coverage_text,
        fit,
        load_cases,
        render,
        run_cases,
    )

    write = getattr(args, "write_coverage", False)
    if write and args.cases:
        raise ConfigError("--write-coverage", None, "the coverage table is made from the "
                          "bundled cases only (drop --cases)")
    paths = args.cases or bundled_case_files()
    files = [load_cases(p) for p in paths]
    progress = progress_of(args)
    results = run_cases(files, progress=progress)
    fits = []
    if getattr(args, "loo", False):
        fits = [fit(cf, progress=progress) for cf in files
                if cf.kind == "throughput" and sum(c.fit for c in cf.cases) >= 2]
    print(render(results, fits, args.format), end="")
    if write:
        coverage_path().write_text(coverage_text(results), encoding="utf-8")
    return 0
