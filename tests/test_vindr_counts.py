"""Positive counts of the paper's seven tasks on the public VinDr-CXR (Kaggle) training annotations must match the
counts in nbs/explanations/reproduction_notes.ipynb (decision 7). Needs the real `train.csv`, which cannot be shipped:
set EXPAWARE_VINDR_KAGGLE to it, or put it at data/vindr-cxr-kaggle/train.csv; skipped otherwise."""
import os
from pathlib import Path

import pytest

from expaware_nb.annotations import PAPER_DISEASES, make_task, read_annotations

REPO = Path(__file__).resolve().parents[1]
KAGGLE = Path(os.environ.get("EXPAWARE_VINDR_KAGGLE", REPO / "data" / "vindr-cxr-kaggle" / "train.csv"))

ANY_RADIOLOGIST = {"Aortic enlargement": 3067, "Cardiomegaly": 2300, "Pleural thickening": 1981, "Lung Opacity": 1322,
                   "Pleural effusion": 1032, "Consolidation": 353, "Atelectasis": 186}
TWO_RADIOLOGISTS = {"Aortic enlargement": 2346, "Cardiomegaly": 1817, "Pleural thickening": 882, "Lung Opacity": 547,
                    "Pleural effusion": 634, "Consolidation": 121, "Atelectasis": 62}

pytestmark = pytest.mark.skipif(not KAGGLE.exists(), reason=f"VinDr-CXR Kaggle train.csv not found at {KAGGLE}")


@pytest.fixture(scope="module")
def annotations():
    return read_annotations(KAGGLE)


def test_release_shape(annotations):
    assert annotations.image_id.nunique() == 15000
    assert set(annotations.groupby("image_id").rad_id.nunique()) == {3}


@pytest.mark.parametrize("min_raters,expected", [(1, ANY_RADIOLOGIST), (2, TWO_RADIOLOGISTS)])
def test_positive_counts(annotations, min_raters, expected):
    assert set(expected) == set(PAPER_DISEASES)
    got = {d: int((make_task(annotations, d, min_raters=min_raters).images.label == 1).sum()) for d in PAPER_DISEASES}
    assert got == expected
