"The `expaware` console script, as a user runs it (installed entry point, separate process)."
import subprocess

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
    assert (tmp_path / "data" / "synthetic" / "synthetic.json").exists()
    assert len(list((tmp_path / "runs" / "demo").glob("*/DONE"))) == 2
