"""The CI gate that keeps notebooks (the source) and expaware_nb/ (generated) in sync.

Runs tests/check_sync.sh on a throw-away git copy of the project: clean copy passes; an edit
made to the generated module only, or an uncleaned notebook, makes it fail and name the file."""
import json, shutil, subprocess

import pytest


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def project_copy(repo_root, tmp_path):
    dst = tmp_path / "proj"
    dst.mkdir()
    for name in ["nbs", "expaware_nb", "tests"]:
        shutil.copytree(repo_root / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy(repo_root / name, dst / name)
    git(dst, "init", "-q")
    git(dst, "add", "-A")
    git(dst, "commit", "-q", "-m", "copy")
    return dst


def check_sync(cwd):
    return subprocess.run(["bash", "tests/check_sync.sh"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_clean_copy_is_in_sync(project_copy):
    out = check_sync(project_copy)
    assert out.returncode == 0, out.stderr


def test_hand_edit_of_generated_module_fails(project_copy):
    module = project_copy / "expaware_nb" / "saliency.py"
    module.write_text(module.read_text().replace("k: float = 0.5", "k: float = 0.25"))
    out = check_sync(project_copy)
    assert out.returncode == 1
    assert "expaware_nb/saliency.py" in out.stderr


def test_uncleaned_notebook_fails(project_copy):
    path = project_copy / "nbs" / "00_saliency.ipynb"
    nb = json.loads(path.read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 7
    code["metadata"]["scrolled"] = True
    path.write_text(json.dumps(nb, indent=1))
    out = check_sync(project_copy)
    assert out.returncode == 1
    assert "nbs/00_saliency.ipynb" in out.stderr
