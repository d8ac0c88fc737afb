"""The synthetic dataset in each public layout (RSNA, NIH ChestX-ray14, SIIM-ACR) and in the generic CSV and COCO
forms: `expaware check-data` prints counts equal to plain pandas counts of the written files and draws the boxes and
masks where the table says; a tiny `expaware sweep` (two cells, one epoch) whose profile generates its data in the
layout finishes every cell with results."""
import json, re, subprocess, sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from expaware_nb.annotations import FORMATS, read_annotations, rle_decode
from expaware_nb.checkdata import BOX_COLOUR
from expaware_nb.layouts import LAYOUT_FINDINGS, LAYOUT_MARKER, write_layout
from expaware_nb.runs import collect_runs
from expaware_nb.sweep import sweep_status
from expaware_nb.synth import BOX_COLUMNS, make_synthetic_dataset
from expaware_nb.xray import read_xray

SIZE = 128
# two findings, so that every layout has positives and negatives of its task in a small dataset
SYNTHETIC = dict(n_train=60, n_test=20, seed=0, prevalence={"Lung Opacity": 1., "Cardiomegaly": 1.}, progress=False)
TINY = ["worlds=[]", "formulations=[bce, logit_sqr]", "alphas=[1.0]", "epochs=1", "image_size=64", "batch_size=16"]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    "{layout: its annotation file}, all written from one synthetic dataset."
    root = tmp_path_factory.mktemp("layouts")
    synthetic = make_synthetic_dataset(root / "synthetic", **SYNTHETIC)
    return {layout: write_layout(synthetic, layout, root / layout) for layout in LAYOUT_FINDINGS}


def task_counts(layout: str, path) -> tuple:
    "(images, images with a box or mask, boxes) of the layout's task finding, counted with pandas on the written file."
    if layout == "coco":
        data = json.loads(path.read_text())
        category = next(c["id"] for c in data["categories"] if c["name"] == LAYOUT_FINDINGS[layout])
        images = {a["image_id"] for a in data["annotations"] if a["category_id"] == category}
        return len(images), len(images), sum(a["category_id"] == category for a in data["annotations"])
    df = pd.read_csv(path)
    if layout == "rsna": marked, image, boxed = df[df.Target == 1], "patientId", "x"
    if layout == "siim":
        marked, image = df[df[" EncodedPixels"].str.strip() != "-1"], "ImageId"
        return marked[image].nunique(), marked[image].nunique(), len(marked)
    if layout == "generic": marked, image, boxed = df[df.label == "Lung Opacity"], "path", "x_min"
    if layout == "nih":
        entries = pd.read_csv(path.parent / "Data_Entry_2017_v2020.csv")
        labelled = entries[entries["Finding Labels"].str.split("|").map(lambda ls: "Infiltration" in ls)]
        boxes = df[df["Finding Label"] == "Infiltrate"]
        return labelled["Image Index"].nunique(), boxes["Image Index"].nunique(), len(boxes)
    with_box = marked.dropna(subset=[boxed])
    return marked[image].nunique(), with_box[image].nunique(), len(with_box)


def check_data(path, out) -> str:
    result = subprocess.run([sys.executable, "-m", "expaware_nb.cli", "check-data", str(path), "--out", str(out),
                             "--per-finding", "3", "--size", str(SIZE)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize("layout", list(LAYOUT_FINDINGS))
def test_check_data_counts_and_sheet(written, layout, tmp_path):
    stdout = check_data(written[layout], tmp_path)
    table = read_annotations(written[layout])
    assert f"format: {table.attrs['format']}" in stdout and "skipped rows: 0" in stdout
    n = table.image_id.nunique()
    assert f"images: {n} ({n} on disk)" in stdout
    finding = LAYOUT_FINDINGS[layout]
    line = re.search(rf"^\s+{finding}\s+(\d+) images\s+(\d+) localised\s+(\d+) boxes", stdout, re.M)
    assert line, stdout
    assert tuple(map(int, line.groups())) == task_counts(layout, written[layout])
    sheet = np.asarray(Image.open(tmp_path / "contact_sheet.png").convert("RGB")).astype(int)
    tiles = pd.read_csv(tmp_path / "contact_sheet.csv", dtype={"image_id": str})
    assert len(tiles) >= 3 and tiles.read.all()
    for t in tiles.itertuples():
        tile = sheet[t.top:t.top + SIZE, t.left:t.left + SIZE]
        rows = table[(table.image_id == t.image_id) & (table.finding == t.finding)]
        h, w = read_xray(t.path).shape
        red = (tile == BOX_COLOUR).all(-1)
        assert red.any(), t
        for x0, y0, x1, y1 in rows[BOX_COLUMNS].dropna().to_numpy() * [SIZE / w, SIZE / h, SIZE / w, SIZE / h]:
            ym = int((y0 + y1) / 2)
            assert red[ym, max(int(x0) - 1, 0):int(x0) + 2].any() and red[ym, int(x1) - 2:int(x1) + 1].any(), t
        if "mask" in rows:                                         # a mask is tinted blue; grey elsewhere off the boxes
            mask = np.zeros((SIZE, SIZE), bool)
            for code in rows["mask"]:
                mask |= np.asarray(Image.fromarray(rle_decode(code, (h, w))).resize((SIZE, SIZE), Image.NEAREST))
            blue = tile[..., 2] > tile[..., 0]
            assert blue[mask & ~red].mean() > .9 and not blue[~mask & ~red].any(), t


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUT_FINDINGS))
def test_sweep_runs_on_each_layout(layout, tmp_path):
    "The profile generates its data in the layout (`synthetic: {layout: ...}`), then trains and tests two cells on it."
    runs = tmp_path / "runs"
    synthetic = {**SYNTHETIC, "layout": layout}
    del synthetic["progress"]
    cmd = [sys.executable, "-m", "expaware_nb.cli", "sweep", "demo", "--runs", str(runs), "--workers", "1"]
    for o in TINY + [f"data={tmp_path / layout}", f"synthetic={json.dumps(synthetic)}",
                     f"cache_dir={tmp_path / 'cache'}", f"diseases=[{LAYOUT_FINDINGS[layout]}]"]:
        cmd += ["--set", o]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "total: 2 done" in result.stdout, result.stdout[-2000:]
    assert (sweep_status(runs).state == "done").all()
    table = collect_runs(runs)
    assert sorted(table.formulation) == ["bce", "logit_sqr"]
    assert (table.disease == LAYOUT_FINDINGS[layout]).all()
    assert (table.n_positives > 0).all() and (table.n_images > table.n_positives).all()
    held = json.loads((tmp_path / layout / LAYOUT_MARKER).read_text())              # what the profile generated
    assert held["layout"] == layout
    assert read_annotations(tmp_path / layout / held["file"]).attrs["format"] == FORMATS[layout]
    assert table[["accuracy", "common_top_precision", "common_coverage"]].notna().all().all()
