"""The readers of the public chest X-ray datasets (RSNA Pneumonia, NIH ChestX-ray14's boxes, SIIM-ACR pneumothorax) on
their real annotation files, which torchxrayvision's wheel ships (a dev dependency): every count is computed here with
plain pandas from the file itself, independently of the readers, and compared with what the readers and `make_task`
give. Skipped when torchxrayvision is not installed."""
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expaware_nb.annotations import make_task, read_annotations, read_nih, read_rsna, read_siim, rle_box, rle_decode
from expaware_nb.synth import NO_FINDING

TXV = importlib.util.find_spec("torchxrayvision")              # located, not imported (importing it loads torch)
pytestmark = pytest.mark.skipif(TXV is None, reason="torchxrayvision (a dev dependency) ships the annotation files")
DATA = Path(TXV.origin).parent / "data" if TXV else Path("torchxrayvision-not-installed")
RSNA, NIH_BOXES = DATA / "kaggle_stage_2_train_labels.csv.zip", DATA / "BBox_List_2017.csv.gz"
NIH_ENTRIES, SIIM = DATA / "Data_Entry_2017_v2020.csv.gz", DATA / "siim-pneumothorax-train-rle.csv.gz"
ALL_IN = dict(val_fraction=0, test_fraction=0, balance=False)      # every positive and negative, one split


def positives(task) -> set: return set(task.images.image_id[task.images.label == 1])
def negatives(task) -> set: return set(task.images.image_id[task.images.label == 0])


@pytest.fixture(scope="module")
def rsna(): return read_rsna(RSNA)


def test_rsna_counts(rsna):
    raw = pd.read_csv(RSNA)
    assert (len(raw), raw.patientId.nunique()) == (30227, 26684)
    assert (len(rsna), rsna.image_id.nunique(), rsna.attrs["skipped"]) == (len(raw), raw.patientId.nunique(), [])
    boxes = raw.dropna(subset=["x"])
    assert (rsna.x_min.notna().sum(), len(boxes)) == (9555, 9555)
    task = make_task(rsna, "lung opacity", **ALL_IN)
    assert positives(task) == set(raw.patientId[raw.Target == 1]) and len(positives(task)) == 6012
    assert negatives(task) == set(raw.patientId[raw.Target == 0])
    assert len(task.boxes) == len(boxes)
    first = boxes.iloc[0]
    got = task.boxes[task.boxes.image_id == first.patientId].iloc[0]
    assert (got.x_min, got.y_max) == (first.x, first.y + first.height)


def test_rsna_paths(rsna):
    assert rsna.path.iloc[0] == str(DATA / "stage_2_train_images" / f"{rsna.image_id.iloc[0]}.dcm")
    assert read_rsna(RSNA, images="/imgs").path.iloc[0] == f"/imgs/{rsna.image_id.iloc[0]}.dcm"


@pytest.fixture(scope="module")
def nih(): return read_annotations(NIH_BOXES)          # finds Data_Entry_2017_v2020.csv.gz next to it


def test_nih_counts(nih):
    raw, entries = pd.read_csv(NIH_BOXES), pd.read_csv(NIH_ENTRIES)
    assert (len(raw), raw["Image Index"].nunique(), raw["Finding Label"].nunique()) == (984, 880, 8)
    boxes = nih[nih.x_min.notna()]
    assert (len(boxes), boxes.image_id.nunique(), boxes.finding.nunique(), nih.attrs["skipped"]) == (984, 880, 8, [])
    assert nih.image_id.nunique() == entries["Image Index"].nunique() == 112120
    labels = entries.assign(finding=entries["Finding Labels"].str.split("|")).explode("finding")
    for name in raw["Finding Label"].unique():
        finding = "Infiltration" if name == "Infiltrate" else name       # the box list's spelling of the label
        task = make_task(nih, finding, **ALL_IN)
        assert positives(task) == set(raw["Image Index"][raw["Finding Label"] == name]), name
        assert negatives(task) == set(entries["Image Index"]) - set(labels["Image Index"][labels.finding == finding])
        assert len(task.boxes) == (raw["Finding Label"] == name).sum()
    normal = make_task(nih, "Cardiomegaly", negatives="no_finding", **ALL_IN)
    assert negatives(normal) == set(entries["Image Index"][entries["Finding Labels"] == "No Finding"])


def test_nih_boxes_only():
    raw = pd.read_csv(NIH_BOXES)
    table = read_nih(NIH_BOXES)
    assert (len(table), table.image_id.nunique()) == (984, 880)
    first = table.iloc[0]
    assert first.x_max == pytest.approx(raw["Bbox [x"][0] + raw["w"][0])
    assert first.y_max == pytest.approx(raw["y"][0] + raw["h]"][0])


@pytest.fixture(scope="module")
def siim(): return read_annotations(SIIM)


def test_siim_counts(siim):
    raw = pd.read_csv(SIIM)
    codes = raw[" EncodedPixels"].str.strip()
    assert (raw.ImageId.nunique(), raw.ImageId[codes != "-1"].nunique()) == (12047, 2669)
    assert (siim.image_id.nunique(), siim.attrs["skipped"]) == (12047, [])
    components = siim[siim.finding != NO_FINDING]
    assert len(components) == (codes != "-1").sum() and components.x_min.notna().all()
    task = make_task(siim, "Pneumothorax", **ALL_IN)
    assert positives(task) == set(raw.ImageId[codes != "-1"]) and len(positives(task)) == 2669
    assert negatives(task) == set(raw.ImageId) - positives(task)
    assert sorted(task.boxes["mask"]) == sorted(codes[codes != "-1"])


def test_siim_masks(siim):
    "A few real components: the decoded mask is as large as the code's run lengths say, and its extent is the box."
    for _, row in siim[siim.finding != NO_FINDING].iloc[::400].iterrows():
        mask = rle_decode(row["mask"])
        assert mask.sum() == np.array(row["mask"].split(), dtype=int)[1::2].sum()
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert (row.x_min, row.y_min, row.x_max, row.y_max) == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
        assert rle_box(row["mask"]) == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
