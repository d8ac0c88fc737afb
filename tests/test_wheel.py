"""The package stands on its own: a wheel built from this checkout, installed in a fresh virtual environment,
runs a sweep of the packaged demo profile from an empty folder, with the training notebook the wheel ships
(nothing of the checkout is on the path). The environment sees exactly the packages of the interpreter that runs
pytest, whatever it is (the system's Python, a virtual environment, conda): torch and the rest are not downloaded
again. Only `expaware_nb` differs: it comes from the wheel, never from the checkout's editable install."""
import json, os, site, subprocess, sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow      # builds a wheel, makes a virtual environment, trains two runs


def run(*cmd, **kw):
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{cmd}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def site_dirs() -> list:
    "This interpreter's site-packages folders (its user site too, when enabled), in the order of its `sys.path`."
    dirs = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    dirs = {os.path.realpath(d) for d in dirs}
    return [p for p in dict.fromkeys(os.path.realpath(p) for p in sys.path) if p in dirs]


# A module the environment imports at startup (through a .pth file): it adds this interpreter's site-packages folders
# after the environment's own, processing their .pth files as `site` does for a site folder, except the editable
# install of expaware_nb (its finder would serve modules from the checkout), and drops any path into the checkout.
OUTER = '''"Written by tests/test_wheel.py: the packages of {python}, after this environment's own."
import os, site, sys
for folder in {dirs!r}:
    if folder not in sys.path: sys.path.append(folder)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".pth") and "expaware_nb" not in name.lower().replace("-", "_"):
            site.addpackage(folder, name, None)
sys.path[:] = [p for p in sys.path if not (os.path.realpath(p) + os.sep).startswith({checkout!r})]
'''


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", root / "dist",
        REPO, timeout=600)
    wheel = next((root / "dist").glob("expaware_nb-*.whl"))
    run(sys.executable, "-m", "venv", "--without-pip", root / "venv", timeout=300)    # no packages of its own
    python = root / "venv" / "bin" / "python"
    own = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    (own / "_outer_environment.py").write_text(OUTER.format(python=sys.executable, dirs=site_dirs(),
                                                            checkout=os.path.realpath(REPO) + os.sep))
    (own / "_outer_environment.pth").write_text("import _outer_environment\n")
    # this interpreter's pip, run by the environment's python, installs into the environment; --ignore-installed:
    # the outer environment's expaware_nb is neither taken for the wheel's nor uninstalled
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "--quiet", wheel,
        timeout=300)
    return root / "venv"


DISTRIBUTIONS = ("import importlib.metadata as m, json, os; seen = {}\n"
                 "for d in m.distributions():\n"
                 "    seen.setdefault(d.metadata['Name'].lower().replace('_', '-'),\n"
                 "                    (d.version, os.path.realpath(d.locate_file(''))))\n"
                 "print(json.dumps(seen))")


def test_the_environment_has_exactly_the_outer_packages(venv, tmp_path):
    outer = json.loads(run(sys.executable, "-c", DISTRIBUTIONS, cwd=tmp_path))
    inner = json.loads(run(venv / "bin" / "python", "-c", DISTRIBUTIONS, cwd=tmp_path))
    assert {"pandas", "torch", "papermill"} <= set(inner)
    mine = inner.pop("expaware-nb"); outer.pop("expaware-nb", None)
    assert mine[1].startswith(os.path.realpath(venv)), mine                  # the wheel's distribution
    assert inner == outer                                                    # every other one, the same install
    code = ("import os, sys, expaware_nb; inside = lambda p: (os.path.realpath(p) + os.sep).startswith(sys.argv[1]); "
            "print([p for p in sys.path if inside(p)]); "
            "print([repr(f) for f in sys.meta_path if 'expaware' in repr(f)])")
    checkout = os.path.realpath(REPO) + os.sep                      # a sibling folder (/x/repo-venv) is not inside
    on_path, finders = run(venv / "bin" / "python", "-c", code, checkout, cwd=tmp_path).splitlines()
    assert (on_path, finders) == ("[]", "[]")                                # nothing leads into the checkout


def test_the_wheel_ships_its_notebooks_and_profiles(venv, tmp_path):
    code = ("import expaware_nb, expaware_nb.sweep as s, expaware_nb.profiles as p, expaware_nb.render as r, "
            "expaware_nb.results as res; "
            "print(expaware_nb.__file__); print(s.TRAIN_NOTEBOOK.is_file(), p.find_profile('demo'), "
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
