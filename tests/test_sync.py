"""The CI gate that keeps notebooks (the source) and expaware_nb/ (generated) in sync, the notebooks
readable as documents, and the repository standing alone.

Runs tests/check_sync.sh on a throw-away git copy of the project: clean copy passes; an edit made to
the generated module only, an uncleaned notebook, a Markdown cell written as `# ` comment lines, a
notebook without its title and summary, or a reference outside the repository makes it fail and name
the file."""
import json, shutil, subprocess

import pytest


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.fixture
def project_copy(repo_root, tmp_path):
    dst = tmp_path / "proj"
    dst.mkdir()
    for name in ["nbs", "expaware_nb", "tests", "tools", "configs", "docs", "results", "bench"]:
        if not (repo_root / name).is_dir(): continue
        shutil.copytree(repo_root / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints",
                                                                                     "_paper"))
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


def set_cell(path, index, text):
    nb = json.loads(path.read_text())
    nb["cells"][index]["source"] = text.splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def test_markdown_written_as_comments_fails(project_copy):
    path = project_copy / "nbs" / "02_losses.ipynb"
    nb = json.loads(path.read_text())
    index = next(i for i, c in enumerate(nb["cells"]) if i > 0 and c["cell_type"] == "markdown")
    set_cell(path, index, "# ## Soft mode\n#\n# The selected pixels keep their values.")
    out = check_sync(project_copy)
    assert out.returncode == 1
    assert f"nbs/02_losses.ipynb cell {index}: Markdown written as `# ` comment lines" in out.stderr


def test_notebook_without_summary_fails(project_copy):
    set_cell(project_copy / "nbs" / "03_metrics.ipynb", 0, "# Explanation metrics\n\nNo summary line here.")
    out = check_sync(project_copy)
    assert out.returncode == 1
    assert "nbs/03_metrics.ipynb cell 0: the title must be followed by a `> one-line summary`" in out.stderr


def test_reference_outside_the_repository_fails(project_copy):
    readme = project_copy / "README.md"
    outside = "../" + "shared/paper/notes.md and the tracker's " + "issue" + " 12"
    readme.write_text(readme.read_text() + f"\nSee {outside}.\n")
    out = check_sync(project_copy)
    assert out.returncode == 1
    assert "README.md line" in out.stderr and "'../" + "shared'" in out.stderr and "'" + "issue" + " 12'" in out.stderr


def test_notebook_using_a_later_module_fails(project_copy):
    path = project_copy / "nbs" / "03_metrics.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"].append({"cell_type": "code", "id": "later", "metadata": {}, "execution_count": None, "outputs": [],
                        "source": ["from expaware_nb.train import TrainConfig"]})
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    out = check_sync(project_copy)
    assert out.returncode == 1
    assert "nbs/03_metrics.ipynb: uses expaware_nb.train, which comes later (notebook 22)" in out.stderr


def test_export_cell_without_a_test_fails(project_copy):
    path = project_copy / "nbs" / "03_metrics.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"].append({"cell_type": "code", "id": "untested", "metadata": {}, "execution_count": None, "outputs": [],
                        "source": ["#| export\n", "def untested_helper(x): return x"]})
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    out = check_sync(project_copy)
    assert out.returncode == 1
    assert "cell " in out.stderr and "(untested): def untested_helper(x): return x" in out.stderr
    assert "not followed by a test or example" in out.stderr


def test_broken_link_and_stale_package_copy_fail(project_copy):
    set_cell(project_copy / "nbs" / "paper" / "fig4_alpha.ipynb", 0,
             "# Figure 4\n\n> summary\n\nSee [the stats](../41_statistics.ipynb).")
    out = check_sync(project_copy)
    assert out.returncode == 1
    assert "nbs/paper/fig4_alpha.ipynb cell 0: link to ../41_statistics.ipynb, which does not exist" in out.stderr
    assert "expaware_nb/notebooks/paper/fig4_alpha.ipynb" in out.stderr        # the shipped copy was stale


def test_hand_edited_readme_number_fails(project_copy):
    readme = project_copy / "README.md"
    text = readme.read_text()
    start = text.index("<!-- table: replication_claims -->")
    digit = start + next(i for i, ch in enumerate(text[start:]) if ch.isdigit())
    readme.write_text(text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1:])   # a number typed in
    out = check_sync(project_copy)
    assert out.returncode == 1
    assert "README.md's numbers differ from what the saved outputs give" in out.stderr
