"""The guidance profile end to end, on a reduced grid: `expaware sweep guidance` trains the field's losses with two
attributions, then executes its report notebook, which writes the Pareto figure, the marker table and EPG and IoU
under both protocols (the heatmap grid's and Model-Guidance's)."""
import subprocess

import pandas as pd
import pytest


@pytest.mark.slow
def test_guidance_sweep_and_report(tmp_path):
    grid = ["--set", "formulations=[bce, logit_alg]", "--set", "guidance=[topk, energy, rrr]",
            "--set", "attributions=[gradcam, ixg_input]", "--set", "alphas=[1.0]", "--set", "epochs=2",
            "--set", "image_size=64", "--set", "synthetic={n_train: 80, n_test: 40, seed: 0}"]
    out = subprocess.run(["expaware", "sweep", "guidance", "--workers", "2", "--figures", "figs", *grid],
                         cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "report (guidance): figs/" in out.stdout

    results = pd.read_csv(tmp_path / "runs" / "guidance" / "results.csv")
    assert len(results) == 1 + 3 * 2                                     # one BCE run, 3 losses x 2 attributions
    methods = set(zip(results.guidance, results.attribution))
    assert methods == {(g, a) for g in ("topk", "energy", "rrr") for a in ("gradcam", "ixg_input")}
    guided = results[results.formulation != "bce"]
    for column in ("common_epg", "own_epg", "own_iou", "own_pointing", "own_auprc", "common_mg_epg", "common_mg_iou"):
        assert guided[column].between(0, 1).all(), column
    for column in ("mprt_head", "mprt_top"):                            # a rank correlation; undefined (NaN) only
        assert guided[column].dropna().between(-1, 1).all(), column      # where every map of a run is constant
        assert guided.loc[guided.guidance == "topk", column].notna().all(), column

    for name in ("guidance_pareto.png", "guidance_pareto.pdf", "guidance_marker.csv", "guidance_runs.csv"):
        assert (tmp_path / "figs" / name).stat().st_size > 0, name
    marker = pd.read_csv(tmp_path / "figs" / "guidance_marker.csv")
    assert len(marker) == len(results)                                   # one row per method, attribution, alpha
    assert (marker.n == 1).all() and (marker.escapes_marker == "inconclusive (n = 1)").all()
    assert set(marker.method) == {"BCE", "LD-Algeb", "Energy (LD-Algeb score)", "RRR (LD-Algeb score)"}
    assert len(pd.read_csv(tmp_path / "figs" / "guidance_runs.csv")) == len(results)
    protocols = pd.read_csv(tmp_path / "figs" / "guidance_protocols.csv")    # EPG and IoU under both protocols
    assert protocols.runs.sum() == len(results) and protocols.filter(like="epg_").stack().between(0, 1).all()
