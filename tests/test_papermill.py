"""The training notebook as the sweep runs it: papermill, from another working directory, with parameters.
Parameters must reach the run (not be silently overwritten by the notebook's defaults, which happens when
nbdev-clean strips the `parameters` tag)."""
import json, subprocess, sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "nbs" / "experiments" / "train.ipynb"


def test_parameters_cell_keeps_its_tag():
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "formulation" in tagged[0].source


def test_papermill_run_from_elsewhere_honours_parameters(tmp_path):
    run_dir, data = tmp_path / "runs" / "one", tmp_path / "data" / "synthetic"
    cmd = [sys.executable, "-m", "papermill", str(NOTEBOOK), str(run_dir / "train.ipynb"), "--cwd", str(tmp_path),
           "-p", "run_dir", "runs/one", "-p", "data", "data/synthetic", "-p", "formulation", "logit_abs", "-p",
           "alpha", "0.5",
           "-p", "epochs", "1", "-p", "seed", "3", "-y", "synthetic: {n_train: 120, n_test: 30, seed: 0}",
           "-y", "extra: {select: last}", "-k", "python3"]
    run_dir.mkdir(parents=True)
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["formulation"], config["alpha"], config["seed"], config["epochs"],
            config["select"]) == ("logit_abs", .5, 3, 1, "last")
    assert Path(config["data"]) == Path("data/synthetic") and (data / "synthetic.json").exists()
    assert (run_dir / "DONE").exists()
    executed = nbformat.read(run_dir / "train.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in outputs), \
        "no figure in the report"
