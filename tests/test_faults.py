"""Faults outside the code's control, met by `expaware sweep` as a user runs it:

- every kind of file a run or the sweep writes, found empty, truncated or garbage: the next sweep sets it aside
  (`<name>.corrupt-<time>`), notes it in `recovered.jsonl`, recovers (the cell is tested or trained again only when
  its results need it), leaves the other cells alone, and ends with the uninterrupted sweep's results;
  `expaware status` lists what was recovered;
- numbers that go bad in one cell: that cell fails with the epoch and batch, the others finish, the sweep exits
  non-zero with the failed cell in its summary;
- a full disk (a tmpfs too small for the sweep; needs root): every write fails cleanly, naming the file, and once
  space is freed the same command finishes, nothing lost and nothing that had finished redone.

All on the CPU with one thread per cell, where training is bit-identical."""
import errno, os, shutil, subprocess, sys, uuid
from pathlib import Path

import pandas as pd
import pytest

from expaware_nb.runs import broken_file, collect_runs, recovery_notes

pytestmark = pytest.mark.slow      # sweeps of small grids, run again after damage

GRID = ["formulations=[bce, logit_sqr, prob_sqr]", "alphas=[1.0]", "epochs=2", "image_size=64", "batch_size=16"]


def sweep_cmd(root: Path, runs: Path, *extra) -> list:
    cmd = [sys.executable, "-m", "expaware_nb.cli", "sweep", "demo", "--runs", str(runs), "--workers", "2"]
    for o in [*GRID, f"data={root}/synthetic", f"cache_dir={root}/cache",
              "synthetic={n_train: 120, n_test: 30, seed: 0}", *extra]:
        cmd += ["--set", o]
    return cmd


def run(cmd, ok=True) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if ok: assert out.returncode == 0, f"{cmd}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def results(runs: Path) -> pd.DataFrame:
    table = collect_runs(runs)
    varying = [c for c in table.columns if c.startswith(("seconds", "epochs_run")) or c == "path"]
    return table.drop(columns=varying).sort_values("id").reset_index(drop=True)


def cells(runs: Path) -> dict:
    "{formulation: cell folder}"
    return {p.parent.name.split("__")[1]: p.parent for p in runs.glob("*/*/cell.json")}


def snapshot(run_dir: Path) -> dict:
    "Every file of a cell folder and its modification time."
    return {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file()}


def damage(path: Path, how: str) -> bytes:
    data = path.read_bytes()
    broken = {"empty": b"", "truncated": data[:max(1, len(data) * 2 // 3)],
              "garbage": os.urandom(max(len(data), 64))}[how]
    if broken == data[:len(broken)] and how == "truncated" and path.suffix == ".csv" and broken.endswith(b"\n"):
        broken = broken[:-1]                                       # cut inside a line, not at its end
    path.write_bytes(broken)
    return broken


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def reference(root):
    run(sweep_cmd(root, root / "reference"))
    return root / "reference"


# (file, how it is damaged, whether the cell must run again to recover); the demo's runs test their last epoch's
# weights (checkpoint.pt), so best.pt is not needed once they are done (22_train covers a lost best.pt)
KINDS = [("DONE", "garbage", True), ("config.json", "truncated", True), ("history.csv", "truncated", True),
         ("test_metrics.json", "empty", True), ("per_sample.csv", "truncated", True), ("heatmaps.npz", "garbage", True),
         ("best.pt", "truncated", False), ("checkpoint.pt", "garbage", True), ("train.ipynb", "truncated", False),
         ("cell.json", "empty", False), ("cell_result.json", "garbage", False), ("attempts.jsonl", "truncated", False)]
ROUNDS = [KINDS[i:i + 3] for i in range(0, len(KINDS), 3)]          # three kinds a round, one per cell


@pytest.mark.parametrize("kinds", ROUNDS, ids=["+".join(k[0] for k in r) for r in ROUNDS])
def test_broken_files_are_set_aside_and_recovered(root, reference, kinds, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(reference, runs)
    folders = cells(runs)
    damaged, before = {}, {f: snapshot(d) for f, d in folders.items()}
    for (name, how, rerun), formulation in zip(kinds, sorted(folders)):
        damaged[formulation] = (name, damage(folders[formulation] / name, how), rerun)
    if kinds is ROUNDS[0]: damage(runs / "results.csv", "truncated")     # and the sweep's own table, once

    run(sweep_cmd(root, runs))

    for formulation, (name, broken, rerun) in damaged.items():
        folder = folders[formulation]
        aside = list(folder.glob(f"{name}.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == broken, (name, list(folder.iterdir()))   # moved aside
        if rerun or name == "cell.json": assert broken_file(folder / name) is None, name     # written afresh
        assert [n["file"] for n in recovery_notes(folder)][:1] == [name], recovery_notes(folder)
        done_again = snapshot(folder)["DONE"] != before[formulation]["DONE"]
        assert done_again == rerun, f"{name}: the cell {'should' if rerun else 'should not'} have run again"
    if kinds is ROUNDS[0]: assert len(list(runs.glob("results.csv.corrupt-*"))) == 1
    pd.testing.assert_frame_equal(results(runs), results(reference))       # recovered to the same numbers
    status = run([sys.executable, "-m", "expaware_nb.cli", "status", "--runs", str(runs)]).stdout
    assert "cells with broken files found and set aside (3" in status, status
    for name, _, _ in kinds: assert f"{name} " in status.split("set aside (")[1], status


def test_a_healthy_folder_is_left_alone(root, reference, tmp_path):
    "A sweep over a healthy folder changes nothing: no file rewritten, nothing set aside."
    runs = tmp_path / "runs"
    shutil.copytree(reference, runs)
    before = {f: snapshot(d) for f, d in cells(runs).items()}
    out = run(sweep_cmd(root, runs)).stdout
    after = {f: {k: v for k, v in snapshot(d).items() if k in before[f]} for f, d in cells(runs).items()}
    assert after == before and "broken file" not in out


def test_bad_numbers_stop_one_cell_not_the_sweep(root, tmp_path):
    "alpha = 1e39 overflows the guided cells' float32 loss at their first batch; BCE (alpha 0) is unaffected."
    runs = tmp_path / "runs"
    out = run(sweep_cmd(root, runs, "alphas=[1e39]"), ok=False)
    assert out.returncode == 1, out.stdout[-2000:]
    states = {f: ("DONE" in snapshot(d)) for f, d in cells(runs).items()}
    assert states == {"bce": True, "logit_sqr": False, "prob_sqr": False}, states
    for formulation in ("logit_sqr", "prob_sqr"):
        folder = cells(runs)[formulation]
        assert not (folder / "checkpoint.pt").exists()                           # nothing non-finite was saved
    failed = out.stdout.split("failed cells:")[1]                     # the summary names both, epoch and batch
    assert failed.count("TrainingDiverged: epoch 1, batch 1: the loss is inf") == 2, out.stdout[-3000:]
    assert "total: 1 done, 2 failed" in out.stdout


# --- a full disk -----------------------------------------------------------------------------------------------------

def mount_tmpfs(where: Path, size_kib: int) -> str | None:
    "Mount a tmpfs of `size_kib` at `where`; why not, or None."
    if os.geteuid() != 0: return "mounting a tmpfs needs root"
    where.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)], capture_output=True,
                         text=True)
    return None if out.returncode == 0 else f"mount failed: {out.stderr.strip()}"


RUN_FILES = {"config.json", "history.csv", "checkpoint.pt", "checkpoint.prev.pt", "best.pt", "test_metrics.json",
             "per_sample.csv", "heatmaps.npz", "DONE", "train.ipynb", "cell.json", "RUNNING.json", "FAILED.json",
             "cell_result.json", "attempts.jsonl", "results.csv"}


def folder_kib(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) // 1024


def test_full_disk_fails_cleanly_and_resumes(root, reference, tmp_path):
    disk = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    need = folder_kib(reference)                   # what the whole sweep leaves (the per-run maximum is higher)
    why = mount_tmpfs(disk, need * 6 // 10)        # room for a cell or two, not for the sweep
    if why: pytest.skip(f"no tmpfs for the full-disk test: {why}")
    try:
        runs = disk / "runs"
        out = run(sweep_cmd(root, runs), ok=False)
        assert out.returncode != 0, "the sweep fit on a disk a third of its size: the test proves nothing"
        text = out.stdout + out.stderr
        assert "the disk is full" in text and str(disk) in text, text[-3000:]
        assert "Traceback" not in out.stderr, out.stderr[-3000:]
        for path in runs.rglob("*"):                # nothing left that a reader would take for a good file
            if path.is_file() and path.name in RUN_FILES and path.stat().st_size:
                assert broken_file(path) is None, path
        assert not [p for p in runs.rglob(".*.tmp")], "a temporary file was left behind"
        finished = {d: (d / "DONE").stat().st_mtime_ns for d in cells(runs).values() if (d / "DONE").exists()}

        subprocess.run(["mount", "-o", f"remount,size={need * 4}k", str(disk)], check=True)   # space freed
        run(sweep_cmd(root, runs))
        assert {d: (d / "DONE").stat().st_mtime_ns for d in finished} == finished      # nothing finished ran again
        pd.testing.assert_frame_equal(results(runs), results(reference))
        print(f"full disk: {len(finished)} of 3 cells had finished before the disk filled")
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
