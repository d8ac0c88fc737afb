"""The generic formats for datasets without a reader of their own: the CSV layout documented in data/README.md (its
example file is read from the README itself, so the documentation cannot drift from the reader) and COCO-format JSON,
each read by `read_annotations` and turned into a task by `make_task`, with counts worked out by hand."""
import json
import logging
import re
from pathlib import Path

import pytest

from expaware_nb.annotations import make_task, read_annotations, read_coco
from expaware_nb.synth import CONSENSUS, NO_FINDING

README = Path(__file__).resolve().parents[1] / "data" / "README.md"
ALL_IN = dict(val_fraction=0, test_fraction=0, balance=False)      # every positive and negative, as the table splits them


def labels(task) -> dict: return dict(zip(task.images.image_id, task.images.label))


def readme_example() -> str:
    "The example CSV of data/README.md's section on other datasets."
    section = README.read_text().split("## Other datasets")[1]
    return re.search(r"```csv\n(.*?)```", section, re.S).group(1)


def test_readme_example(tmp_path):
    example = readme_example()
    assert len(example.splitlines()) == 5
    (tmp_path / "labels.csv").write_text(example)
    table = read_annotations(tmp_path / "labels.csv")
    assert table[["image_id", "rad_id", "finding", "split"]].values.tolist() == [
        ["a", "R1", "Nodule", "train"], ["a", "R2", "Nodule", "train"], ["b", "R1", NO_FINDING, "train"],
        ["c", "R1", "Effusion", "test"]]
    assert table.x_min.notna().tolist() == [True, True, False, False]
    assert (table.x_max[0], table.y_max[1]) == (180., 262.)                       # pixels, as written
    assert table.path[2] == str((tmp_path / "images" / "b.png").resolve())
    assert labels(make_task(table, "nodule", min_raters=2, **ALL_IN)) == {"a": 1, "b": 0, "c": 0}
    assert len(make_task(table, "nodule", **ALL_IN).boxes) == 2                  # one box per rater


@pytest.mark.parametrize("rows, message", [
    ("path,x_min\nimages/a.png,1\n", "labels.csv: missing column(s) label"),
    ("path,label,split\nimages/a.png,x,train\nimages/b.png,x,validation\n",
     "labels.csv, line 3: split 'validation' is not one of train, test"),
    ("path,label,image_id\nimages/a.png,x,../x\n", "labels.csv, line 2: image_id '../x' is not a plain file name"),
    ("path,label\n../x.png,x\n", "labels.csv, line 2: path '../x.png' is empty or points outside")])
def test_generic_errors(tmp_path, rows, message):
    (tmp_path / "labels.csv").write_text(rows)
    with pytest.raises(ValueError, match=re.escape(message)): read_annotations(tmp_path / "labels.csv")


def test_generic_inverted_box_is_a_logged_skip(tmp_path, caplog):
    (tmp_path / "labels.csv").write_text(readme_example() + "images/d.png,Nodule,90,10,50,40,R1,train\n")
    with caplog.at_level(logging.WARNING, "expaware_nb.annotations"): table = read_annotations(tmp_path / "labels.csv")
    assert "d" not in set(table.image_id)
    assert [(s["line"], s["reason"]) for s in table.attrs["skipped"]] == [
        (6, "inverted box (x_max < x_min or y_max < y_min)")]
    assert f"{tmp_path / 'labels.csv'}, line 6: inverted box" in caplog.text


COCO = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
               {"id": 2, "file_name": "b.jpg", "width": 640, "height": 480},
               {"id": 3, "file_name": "c.jpg", "width": 320, "height": 240},
               {"id": 4, "file_name": "d.jpg", "width": 640, "height": 480},     # no annotation: a negative
               {"id": 5, "file_name": "e.jpg", "width": 640, "height": 480}],    # its only box is skipped
    "categories": [{"id": 1, "name": "Nodule"}, {"id": 2, "name": "Effusion"}],
    "annotations": [
        {"id": 101, "image_id": 1, "category_id": 1, "bbox": [100, 50, 40, 30], "iscrowd": 0, "area": 1200},
        {"id": 102, "image_id": 1, "category_id": 2, "bbox": [0, 300, 640, 180],
         "segmentation": [[0, 300, 640, 300, 640, 480, 0, 480]]},
        {"id": 103, "image_id": 2, "category_id": 1, "bbox": [10.5, 20.5, 5, 5]},
        {"id": 104, "image_id": 3, "category_id": 2, "bbox": [300, 200, 40, 20]},    # leaves its 320 x 240 image
        {"id": 105, "image_id": 2, "category_id": 9, "bbox": [1, 1, 2, 2]},          # unknown category
        {"id": 106, "image_id": 5, "category_id": 1, "bbox": [50, 50, -10, 10]},     # inverted
        {"id": 107, "image_id": 3, "category_id": 1, "bbox": [1, 1, 2, 2]}]}


@pytest.fixture
def coco(tmp_path):
    (tmp_path / "annotations.json").write_text(json.dumps(COCO))
    return tmp_path / "annotations.json"


def test_coco_table(coco, caplog):
    with caplog.at_level(logging.WARNING, "expaware_nb.annotations"): table = read_annotations(coco)
    assert table[["image_id", "finding"]].values.tolist() == [
        ["a", "Nodule"], ["a", "Effusion"], ["b", "Nodule"], ["c", "Nodule"], ["d", NO_FINDING]]
    assert table.iloc[2][["x_min", "y_min", "x_max", "y_max"]].tolist() == [10.5, 20.5, 15.5, 25.5]
    assert (set(table.rad_id), set(table.split)) == ({CONSENSUS}, {"train"})
    assert table.path[0] == str((coco.parent / "a.jpg").resolve())
    assert sorted((s["line"], s["reason"]) for s in table.attrs["skipped"]) == [
        ("annotation id 104", "box outside the 320 x 240 image"), ("annotation id 105", "unknown category_id"),
        ("annotation id 106", "inverted box (x_max < x_min or y_max < y_min)")]
    assert "skipped 3 annotation row(s)" in caplog.text
    assert read_coco(coco, images="/elsewhere").path[0] == "/elsewhere/a.jpg"


def test_coco_tasks(coco):
    table = read_annotations(coco)
    nodule = make_task(table, "nodule", **ALL_IN)
    assert labels(nodule) == {"a": 1, "b": 1, "c": 1, "d": 0}           # e: its only annotation was skipped
    assert len(nodule.boxes) == 3
    assert labels(make_task(table, "effusion", **ALL_IN)) == {"a": 1, "b": 0, "c": 0, "d": 0}
    assert labels(make_task(table, "effusion", negatives="no_finding", **ALL_IN)) == {"a": 1, "d": 0}


@pytest.mark.parametrize("content, message", [
    ("not json", "not a JSON file"),
    (json.dumps({"images": [], "annotations": []}), "missing key 'categories'"),
    (json.dumps({**COCO, "images": [{"id": 1, "file_name": "a.jpg", "width": 2}]}), "images[0] has no key 'height'"),
    (json.dumps({**COCO, "images": [{"id": 1, "file_name": "../a.jpg", "width": 2, "height": 2}]}),
     "image id 1: path '../a.jpg' is empty or points outside")])
def test_coco_errors(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'bad.json'}") + ".*" + re.escape(message)):
        read_annotations(tmp_path / "bad.json")
