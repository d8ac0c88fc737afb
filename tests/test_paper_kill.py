"""`expaware paper` killed mid-way and run again finishes, and no figure or table is ever left half-written.

On a copy of the shipped replication outputs (results/replication, two worlds), `expaware paper` runs once
uninterrupted (the reference: which files a render makes), then on another copy it is killed three times (`SIGKILL`
of its process group) as its files appear: when the first file of that attempt appears, then the n/3-th, then the
3n/4-th (n: the reference's count). After each kill, once every process of the killed render has exited, every file of
the figures folder is read back whole (PNG decoded, PDF from `%PDF` to `%%EOF`, CSV parsed, Markdown non-empty UTF-8)
and every executed notebook under `_paper/` parses as JSON; hidden temporary files (names starting with ".") are what
a reader never opens. The last run goes through, writes the reference's files and leaves no temporary file in the
figures folder. A quick test first shows that these checks catch a file of each kind cut in half."""
import csv, io, json, os, signal, subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "replication"
DEADLINE = 900                         # seconds; only to fail with a message when an awaited event never comes


def start(runs: Path, figures: Path, log: Path) -> subprocess.Popen:
    "`expaware paper` in its own process group, its output to `log`."
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "expaware_nb.cli", "paper", str(runs), "--figures", str(figures)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def visible(folder: Path) -> list:
    "The files a reader sees under `folder`: no hidden (temporary, partial) file."
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def versions(folder: Path) -> set:
    "(path, inode, mtime) of every file under `folder`: a file written again (a new file renamed on it) is new here."
    found = set()
    for p in visible(folder):
        try: s = p.stat()
        except FileNotFoundError: continue
        found.add((p, s.st_ino, s.st_mtime_ns))
    return found


def process_tree(root: int) -> set:
    "The ids of `root` and of every process below it (kernels run in sessions of their own: a group kill misses them)."
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try: pid, rest = stat.read_text().split(" (", 1)
        except OSError: continue
        children.setdefault(int(rest.rsplit(") ", 1)[1].split()[1]), []).append(int(pid))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop(); tree.add(pid); todo += children.get(pid, [])
    return tree


def running(pid: int) -> bool:
    try: state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
    except (OSError, IndexError): return False
    return state not in ("Z", "X")                               # a zombie has finished


def kill_at(k: int, runs: Path, figures: Path, log: Path) -> int:
    "Start a render, SIGKILL its process group as soon as it has written its `k`-th file; how many it had written."
    before = versions(figures)
    proc = start(runs, figures, log)
    seen, t0 = set(), time.monotonic()
    while len(seen) < k:
        seen |= versions(figures) - before
        if len(seen) >= k: break
        assert proc.poll() is None, f"the render ended ({proc.returncode}) before its file {k}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() - t0 < DEADLINE, f"no file {k} after {DEADLINE}s (saw {len(seen)})"
        time.sleep(.02)
    tree = process_tree(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    t0 = time.monotonic()
    while [p for p in tree if running(p)]:                       # kernels follow their killed parent within seconds
        if time.monotonic() - t0 > DEADLINE:
            left = [p for p in tree if running(p)]
            for p in left: os.kill(p, signal.SIGKILL)
            pytest.fail(f"processes of the killed render still ran {DEADLINE}s later: {left}")
        time.sleep(.1)
    return len(seen)


def unreadable(figures: Path, runs: Path) -> tuple:
    "([files a reader would find broken, with why], how many files were checked)."
    broken, checked = [], 0
    for p in visible(figures):
        checked += 1
        try:
            if p.suffix == ".png":
                with Image.open(p) as im: im.load()
            elif p.suffix == ".pdf":
                data = p.read_bytes()
                if not (data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")): raise ValueError("truncated PDF")
            elif p.suffix == ".csv":
                pd.read_csv(p)
                text = p.read_text()
                if not text.endswith("\n"): raise ValueError("truncated CSV (no final newline)")
                if len({len(row) for row in csv.reader(io.StringIO(text))}) != 1: raise ValueError("ragged CSV rows")
            elif p.suffix == ".md":                              # a table of `to_markdown`: whole lines of cells
                lines = p.read_bytes().decode("utf-8").split("\n")
                if lines[-1] != "" or len(lines) < 3 or not all(l.startswith("|") and l.endswith("|")
                                                                for l in lines[:-1]):
                    raise ValueError("not a whole Markdown table")
            else: raise ValueError("a file of a kind this test does not know how to check")
        except Exception as e: broken.append(f"{p.relative_to(figures)}: {type(e).__name__}: {e}")
    for p in sorted(runs.glob("*/_paper/*.ipynb")):
        if p.name.startswith("."): continue
        checked += 1
        try:
            if not isinstance(json.loads(p.read_text()).get("cells"), list): raise ValueError("no cells")
        except Exception as e: broken.append(f"{p.relative_to(runs)}: {type(e).__name__}: {e}")
    return broken, checked


def made(figures: Path, runs: Path) -> list:
    "What a render made, relative to its folders: figures and tables, and the executed notebooks."
    return ([str(p.relative_to(figures)) for p in visible(figures)]
            + sorted(str(p.relative_to(runs)) for p in runs.glob("*/_paper/*.ipynb") if not p.name.startswith(".")))


def copy_runs(to: Path) -> Path:
    subprocess.run(["cp", "-r", str(RESULTS), str(to)], check=True)
    assert not list(to.glob("*/_paper")), "the shipped outputs hold executed notebooks: the copy would not start empty"
    return to


def test_the_checks_find_a_half_written_file_of_each_kind(tmp_path):
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from expaware_nb.figures import save_figure
    from expaware_nb.results import save_table
    figures, runs = tmp_path / "figures", tmp_path / "runs"
    fig, ax = plt.subplots(); ax.plot([0, 1], [1, 0])
    save_figure(fig, figures / "shortcut", "fig"); plt.close(fig)
    save_table(pd.DataFrame({"claim": ["a, quoted", "b"], "n": [21, 7]}), figures / "shortcut", "claims")
    (runs / "shortcut" / "_paper").mkdir(parents=True)
    (runs / "shortcut" / "_paper" / "fig1.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4}))
    (figures / "shortcut" / ".fig.png.123.tmp").write_bytes(b"\x89PNG")        # hidden: a reader never opens it
    assert unreadable(figures, runs) == ([], 5)
    for p in [*visible(figures), runs / "shortcut" / "_paper" / "fig1.ipynb"]:
        whole = p.read_bytes()
        p.write_bytes(whole[:len(whole) // 2])
        broken, _ = unreadable(figures, runs)
        name = p.relative_to(figures if figures in p.parents else runs)
        assert len(broken) == 1 and broken[0].startswith(f"{name}: "), (name, broken)
        p.write_bytes(whole)


@pytest.mark.slow                      # four renders of the replication, three of them killed (3 to 6 minutes)
def test_a_killed_paper_render_leaves_no_half_written_file_and_finishes(tmp_path):
    t0 = time.monotonic()
    reference_runs, reference = copy_runs(tmp_path / "reference_runs"), tmp_path / "reference_figures"
    done = subprocess.run([sys.executable, "-m", "expaware_nb.cli", "paper", str(reference_runs), "--figures",
                           str(reference)], capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    expected = made(reference, reference_runs)
    n = len(visible(reference))
    assert n > 40 and {"shortcut/claims.md", "clean/fig5_formulations.pdf"} <= set(expected), expected

    t_reference = time.monotonic() - t0
    runs, figures, log = copy_runs(tmp_path / "runs"), tmp_path / "figures", tmp_path / "paper.log"
    report = []
    for k in (1, n // 3, 3 * n // 4):
        written = kill_at(k, runs, figures, log)
        broken, checked = unreadable(figures, runs)
        assert not broken, f"killed at file {written}: half-written files:\n" + "\n".join(broken)
        assert checked >= k, (checked, k)                        # the files this attempt had written were checked
        report.append((k, written, checked, len(broken)))

    t1 = time.monotonic()
    final = start(runs, figures, log)
    assert final.wait(timeout=DEADLINE) == 0, log.read_text()[-3000:]
    broken, checked = unreadable(figures, runs)
    assert not broken, "\n".join(broken)
    assert made(figures, runs) == expected                       # the complete set, no more, no less
    assert not [p.name for p in figures.rglob(".*")], "temporary files of the killed renders were left behind"
    print(f"\n{n} files per render; kills (kill at file k: files written by then, files checked, half-written): "
          + "; ".join(f"k={k}: {w}, {c}, {b}" for k, w, c, b in report)
          + f"; final render: {checked} files checked, {len(broken)} half-written ({time.monotonic() - t1:.0f}s); "
          f"reference render {t_reference:.0f}s; wall {time.monotonic() - t0:.0f}s")
