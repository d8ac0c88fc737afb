"The `expaware` console script, as a user runs it (installed entry point, separate process)."
import subprocess

import pandas as pd
import pytest

import expaware_nb


def expaware(*args):
    return subprocess.run(["expaware", *args], capture_output=True, text=True, timeout=120)


def test_version_is_the_package_version():
    out = expaware("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"expaware-nb {expaware_nb.__version__}"


def test_no_subcommand_prints_usage_and_fails():
    out = expaware()
    assert out.returncode == 2
    assert "usage: expaware" in out.stdout


def test_unknown_subcommand_is_a_usage_error():
    out = expaware("frobnicate")
    assert out.returncode == 2
    assert "invalid choice: 'frobnicate'" in out.stderr


def test_status_of_an_empty_folder(tmp_path):
    out = expaware("status", "--runs", str(tmp_path))
    assert out.returncode == 0 and "no cells found" in out.stdout


@pytest.mark.slow
def test_demo_end_to_end_on_a_reduced_grid(tmp_path):
    "The README's first command, on a smaller grid: data, cache, sweep, summary, where the results are."
    out = subprocess.run(["expaware", "demo", "--runs", "runs/demo", "--workers", "2", "--set",
                          "formulations=[bce, logit_sqr]",
                          "--set", "alphas=[1.0]", "--set", "epochs=2", "--set",
                          "synthetic={n_train: 80, n_test: 30, seed: 0}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "results table: runs/demo/results.csv   (2 finished runs)" in out.stdout
    assert (tmp_path / "data" / "replication" / "shortcut" / "synthetic.json").exists()
    assert len(list((tmp_path / "runs" / "demo" / "shortcut").glob("*/DONE"))) == 2
    assert "other settings than the shipped replication" in out.stdout       # a reduced grid is not compared


@pytest.mark.slow
def test_demo_cells_are_compared_with_the_shipped_replication(tmp_path):
    "Two of the demo's cells at the replication's settings, on a fresh data folder: each is set beside its cell's spread."
    out = subprocess.run(["expaware", "demo", "--runs", "runs/demo", "--workers", "2", "--set",
                          "formulations=[bce, logit_sqr]", "--set", "alphas=[1.0]"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "the demo against the shipped replication (the same cells, 3 seeds" in out.stdout
    checked = pd.read_csv(tmp_path / "figures" / "demo_vs_reference.csv")
    assert len(checked) == 2 and (checked.seeds == 3).all(), checked
    assert checked[[f"{m}_inside" for m in ("accuracy", "all_precision", "top_precision", "coverage")]].notna().all().all()
