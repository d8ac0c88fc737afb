"`expaware check-data` on the embedded synthetic data: its counts against plain pandas, the contact sheet's pixels."
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from expaware_nb.annotations import read_annotations
from expaware_nb.checkdata import BOX_COLOUR, BOX_WIDTH
from expaware_nb.synth import BOX_COLUMNS, NO_FINDING, make_synthetic_dataset
from expaware_nb.xray import read_xray

SIZE = 128


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    "The synthetic dataset, its annotation table read with pandas alone, and the output of `expaware check-data`."
    folder = tmp_path_factory.mktemp("check")
    data = make_synthetic_dataset(folder / "synthetic", n_train=60, n_test=20, progress=False)
    boxes = pd.concat([pd.read_csv(data / "annotations" / f"annotations_{s}.csv", dtype={"image_id": str})
                       for s in ("train", "test")])
    out = subprocess.run(["expaware", "check-data", str(data), "--out", str(folder / "sheet"), "--per-finding", "2",
                          "--size", str(SIZE)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return data, boxes, out.stdout, folder / "sheet"


def finding_lines(stdout: str) -> dict:
    "{finding: (images, localised, boxes)} from the report's per-finding lines."
    lines = stdout.split("per finding")[1].split("skipped rows")[0].splitlines()[1:]
    found = {}
    for line in lines:
        name, numbers = line.split(" images")[0].rsplit(None, 1)
        rest = line.split()
        i = rest.index("images")
        found[name.strip()] = (int(numbers), int(rest[i + 1]), int(rest[i + 3]))
    return found


def test_counts_per_finding_equal_pandas_counts(checked):
    data, boxes, stdout, _ = checked
    boxed = boxes.dropna(subset=["x_min"])
    expected = {f: (boxed[boxed.class_name == f].image_id.nunique(),) * 2 + ((boxed.class_name == f).sum(),)
                for f in boxed.class_name.unique()}
    labels = pd.concat([pd.read_csv(data / "annotations" / f"image_labels_{s}.csv") for s in ("train", "test")])
    normal = labels[labels[NO_FINDING] > 0].image_id.nunique()
    report = finding_lines(stdout)
    assert report.pop(NO_FINDING) == (normal, 0, 0)
    assert report == expected
    assert f"images: {labels.image_id.nunique()} ({labels.image_id.nunique()} on disk)" in stdout
    assert "format: VinDr-CXR (PhysioNet folder)" in stdout and "skipped rows: 0" in stdout


def test_tasks_listed_with_their_positives_with_boxes(checked):
    "One task line per finding; its positives with a box are the finding's images with a box, counted with pandas."
    import re
    _, boxes, stdout, _ = checked
    boxed = boxes.dropna(subset=["x_min"])
    lines = [l for l in stdout.split("tasks (")[1].splitlines()[1:] if l.startswith("  ")]
    found = {}
    for line in lines:
        name = re.split(r"\s{2,}", line.strip())[0]
        m = re.search(r"only (\d+) positives with localisation|\((\d+) with a box or mask", line)
        found[name] = int(m.group(1) or m.group(2))
    assert found == boxed.groupby("class_name").image_id.nunique().to_dict()


def test_sheet_boxes_are_where_the_table_says(checked):
    data, _, stdout, sheet_dir = checked
    assert f"contact sheet: {sheet_dir / 'contact_sheet.png'}" in stdout
    annotations = read_annotations(data)
    sheet = np.asarray(Image.open(sheet_dir / "contact_sheet.png").convert("RGB"))
    layout = pd.read_csv(sheet_dir / "contact_sheet.csv", dtype={"image_id": str})
    assert layout.read.sum() >= len(layout) - 1                     # a damaged DICOM may be shown blank
    checked_edges = 0
    for t in layout[layout.read].itertuples():
        tile = sheet[t.top:t.top + SIZE, t.left:t.left + SIZE]
        h, w = read_xray(t.path).shape
        table = annotations[(annotations.image_id == t.image_id) & (annotations.finding == t.finding)]
        scaled = table[BOX_COLUMNS].dropna().to_numpy() * [SIZE / w, SIZE / h, SIZE / w, SIZE / h]
        red = (tile == BOX_COLOUR).all(-1)
        v, u = np.mgrid[:SIZE, :SIZE] + .5
        near_edge = np.zeros_like(red)
        for x0, y0, x1, y1 in scaled:
            near_edge |= ((u > x0 - 1.5) & (u < x1 + 1.5) & (v > y0 - 1.5) & (v < y1 + 1.5)
                          & ~((u > x0 + 1.5 + BOX_WIDTH) & (u < x1 - 1.5 - BOX_WIDTH)
                              & (v > y0 + 1.5 + BOX_WIDTH) & (v < y1 - 1.5 - BOX_WIDTH)))
            ym, xm = int((y0 + y1) / 2), int((x0 + x1) / 2)
            assert red[ym, max(int(x0) - 1, 0):int(x0) + 2].any(), (t.image_id, "left edge")
            assert red[ym, int(x1) - 2:int(x1) + 1].any(), (t.image_id, "right edge")
            assert red[max(int(y0) - 1, 0):int(y0) + 2, xm].any(), (t.image_id, "top edge")
            assert red[int(y1) - 2:int(y1) + 1, xm].any(), (t.image_id, "bottom edge")
            if x1 - x0 > 4 * BOX_WIDTH + 4 and y1 - y0 > 4 * BOX_WIDTH + 4:
                assert not red[ym, xm] or near_edge[ym, xm], (t.image_id, "centre")
            checked_edges += 1
        assert not (red & ~near_edge).any(), (t.image_id, "box colour away from every box edge")
    assert checked_edges >= len(layout)
    assert (sheet_dir / "contact_sheet.pdf").stat().st_size > 0


@pytest.mark.parametrize("what", ["missing", "empty folder", "unrelated csv"])
def test_a_path_that_is_not_a_dataset_is_an_error_naming_it(tmp_path, what):
    path = {"missing": tmp_path / "nothing", "empty folder": tmp_path, "unrelated csv": tmp_path / "a.csv"}[what]
    if what == "unrelated csv": path.write_text("name,age\nx,3\n")
    out = subprocess.run(["expaware", "check-data", str(path), "--out", str(tmp_path / "sheet")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.startswith("expaware check-data: error: ") and str(path) in out.stderr, out.stderr
