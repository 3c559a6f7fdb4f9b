"""Shared test settings: a derandomized hypothesis profile for CI (``HYPOTHESIS_PROFILE=ci``),
and the tiny workload the search and sweep tests run."""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

#: A model small enough to simulate hundreds of plans in seconds (our test choice).
TINY = """name: tiny
model: {layers: 8, hidden: 256, heads: 8, vocab: 1024, seq_len: 256}
training: {global_batch: 32, micro_batch: 1}
plan: {tp: 1, pp: 1}
defaults: {cluster: single-node}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("wl") / "tiny.yaml"
    p.write_text(TINY)
    return str(p)


@pytest.fixture
def interrupted_at():
    """``interrupted_at(real, n)``: ``real`` (a sweep's ``run_point``) raising
    KeyboardInterrupt on its ``n``-th call, as Ctrl-C in the middle of a sweep; and the
    list of the calls made."""
    def wrap(real, n: int):
        calls: list = []

        def run_point(task):
            calls.append(task)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(task)
        return run_point, calls
    return wrap
