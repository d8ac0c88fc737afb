"""The package stands on its own: a wheel built from this checkout, installed in a fresh virtual environment,
runs a sweep of the packaged demo profile from an empty folder, with the training notebook the wheel ships
(nothing of the checkout is on the path). The environment sees the base environment's packages (torch and the
rest are not downloaded again); the test checks that `expaware_nb` itself comes from the wheel."""
import os, subprocess, sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow      # builds a wheel, makes a virtual environment, trains two runs


def run(*cmd, **kw):
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{cmd}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", root / "dist",
        REPO, timeout=600)
    wheel = next((root / "dist").glob("expaware_nb-*.whl"))
    run(sys.executable, "-m", "venv", "--system-site-packages", root / "venv", timeout=300)
    run(root / "venv" / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", wheel,
        timeout=300)
    return root / "venv"


def test_the_wheel_ships_its_notebooks_and_profiles(venv, tmp_path):
    code = ("import expaware_nb, expaware_nb.sweep as s, expaware_nb.render as r, expaware_nb.results as res; "
            "print(expaware_nb.__file__); print(s.TRAIN_NOTEBOOK.is_file(), s.find_profile('demo'), "
            "r.paper_notebook('statistics_claims').is_file(), res.reference_spread_of('shortcut') is not None)")
    where, shipped = run(venv / "bin" / "python", "-c", code, cwd=tmp_path).splitlines()
    assert where.startswith(str(venv)), where                          # the wheel's package, not the checkout
    assert shipped == f"True {venv}/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages/" \
                      "expaware_nb/profiles/demo.yaml True True"        # and the replication's reference spread


def test_a_sweep_from_an_empty_folder(venv, tmp_path):
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    out = run(venv / "bin" / "expaware", "sweep", "demo", "--runs", "./runs", "--set", "formulations=[bce,logit_sqr]",
              "--set", "alphas=[1.0]", "--set", "train.epochs=1", "--workers", "2", cwd=tmp_path, env=env, timeout=900)
    assert "results table (2 finished runs): runs/results.csv" in out, out[-2000:]
    assert sorted(p.parent.name.split("__")[1] for p in (tmp_path / "runs").glob("*/*/DONE")) == ["bce", "logit_sqr"]
    assert (tmp_path / "data" / "replication" / "shortcut" / "synthetic.json").is_file()   # the profile's data, made here
