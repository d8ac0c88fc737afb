"""The evidence notebooks (explanations/reproduction_notes, 00-04, 41_stats, 42_claims) are stored with their
outputs: executed again, each gives the same text outputs, volatile values aside (tools/store_outputs.py)."""
import importlib.util
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("store_outputs", REPO / "tools" / "store_outputs.py")
store_outputs = importlib.util.module_from_spec(spec); spec.loader.exec_module(store_outputs)


def test_comparison_ignores_noise_and_sees_results():
    same, n = store_outputs.same, store_outputs.normalised
    assert same(n("p = 0.031250001 at 0x7f3a2b"), n("p = 0.03125  at 0x55d1"))     # float noise, an address, spaces
    assert same(n("max 1.1026859283447266e-06"), n("max 3.4e-07"))                   # both below 1e-4
    assert not same(n("p = 0.031"), n("p = 0.047")) and not same(n("12 runs held"), n("12 runs refuted"))
    assert not same(n("accuracy 0.812"), n("accuracy 0.815"))                        # a changed result is seen


def test_every_evidence_notebook_keeps_its_outputs():
    for path in store_outputs.EVIDENCE:
        stored = store_outputs.texts(nbformat.read(REPO / path, as_version=4))
        assert stored, f"{path} is stored without outputs: python tools/store_outputs.py && nbdev-clean"


@pytest.mark.parametrize("path", store_outputs.EVIDENCE)
def test_stored_outputs_are_not_stale(path):
    problems = store_outputs.stale(path, store_outputs.execute(path))
    assert not problems, "\n".join(problems) + "\nrefresh: python tools/store_outputs.py && nbdev-clean"
