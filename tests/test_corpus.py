"""The output corpus (tests/corpus): reshaping the code must not change any output.

A model change that is meant to move numbers regenerates the corpus
(``python tests/corpus/regen.py``) in the same commit and says why.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent / "corpus"
sys.path.insert(0, str(CORPUS))

from cases import CASES  # noqa: E402
from regen import output_of  # noqa: E402


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_is_byte_identical(name, monkeypatch):
    monkeypatch.chdir(CORPUS.parent.parent)      # example paths are relative to the repo
    status, text = output_of(CASES[name])
    expected = (CORPUS / "expected" / f"{name}.out").read_text(encoding="utf-8")
    assert f"exit {status}\n{text}" == expected
