"""The shipped replication (results/replication/, from `expaware sweep replication`): every figure and table of the
paper is regenerated from it per world with no training, its claims rest on the units the grid has, and the
reference spread the package ships for `expaware demo` is the one these outputs give."""
import json, subprocess
from pathlib import Path

import pandas as pd
import pytest

from expaware_nb.results import load_results, reference_spread, reference_spread_of

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "replication"
WORLDS = ("shortcut", "clean")


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    done = subprocess.run(["expaware", "paper", str(RESULTS), "--figures", str(out)], capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.mark.parametrize("world", WORLDS)
def test_every_figure_and_table_per_world(figures, world):
    made = {p.name for p in (figures / world).iterdir()}
    for name in ("fig1_annotation_mask", "fig2_training_dynamics", "fig3_heatmaps", "fig4a_accuracy_per_alpha",
                 "fig4b_explanation_per_alpha", "fig5_formulations", "claims_per_disease"):
        assert {f"{name}.png", f"{name}.pdf"} <= made, (world, name)
    claims = pd.read_csv(figures / world / "claims.csv").set_index("key")
    pooled = claims.drop(index=["peak_cost_fig2", "trends_across_diseases"])   # one pair's 3 seeds; the 7 diseases
    assert (pooled.n >= 21).all(), pooled.n
    assert not pooled.verdict.str.contains(r"inconclusive \(n").any(), pooled.verdict   # no row short of units
    assert claims.n["trends_across_diseases"] == 7
    per_disease = pd.read_csv(figures / world / "claims_per_disease.csv")
    assert per_disease.disease.nunique() == 7


@pytest.mark.parametrize("world", WORLDS)
def test_executed_notebooks_read_cleanly(figures, world):
    "Each executed paper notebook: cells numbered 1, 2, ... in order, no path or numpy repr, a closing 'On these runs'."
    executed = sorted((RESULTS / world / "_paper").glob("*.ipynb"))
    assert len(executed) == 7, executed
    for path in executed:
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1)), path.name
        text = lambda o, key: "".join(o.get(key, "") if key == "text" else o.get("data", {}).get(key, ""))
        shown = "".join(text(o, "text") + text(o, "text/plain") + text(o, "text/markdown")
                        for c in cells for o in c["outputs"])
        for clutter in ("PosixPath(", "np.float64(", "np.int64("):
            assert clutter not in shown, (path.name, clutter)
        closing = "".join(text(o, "text/markdown") for o in cells[-1]["outputs"])
        assert closing.startswith("**On these runs"), (path.name, closing[:200])


def test_the_shipped_reference_spread_is_the_replications():
    shipped = reference_spread_of("shortcut")
    again = reference_spread(load_results(RESULTS / "shortcut"))
    pd.testing.assert_frame_equal(shipped, again, check_dtype=False)
