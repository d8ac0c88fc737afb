"""The sweep under abuse: SIGKILLed up to five times (each as soon as it has made some progress: an epoch, a
finished cell), then finished; two sweeps at once on one runs folder; submitit's local executor. Nothing finished
runs twice, nothing half-written counts as finished, both of two concurrent sweeps end with the complete table, and
the final results equal an uninterrupted sweep's (CPU, same seeds, same threads per cell)."""
import json, os, signal, subprocess, sys, time

import pandas as pd
import pytest

from expaware_nb.runs import collect_runs, load_run
from expaware_nb.profiles import expand, load_profile
from expaware_nb.sweep import sweep, sweep_status

pytestmark = pytest.mark.slow      # sweeps killed and resumed

GRID = ["formulations=[bce, logit, logit_sqr, prob_sqr]", "alphas=[0.5, 1.0]", "epochs=2", "image_size=64",
        "batch_size=16"]


def overrides(root):
    return GRID + [f"data={root}/synthetic", f"cache_dir={root}/cache", "synthetic={n_train: 80, n_test: 30, seed: 0}"]


def start_sweep(root, runs, stdout=subprocess.DEVNULL):
    cmd = [sys.executable, "-m", "expaware_nb.cli", "sweep", "demo", "--runs", str(runs), "--workers", "2"]
    for o in overrides(root): cmd += ["--set", o]
    return subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL, start_new_session=True, text=True)


def results(runs):
    table = collect_runs(runs)
    varying = [c for c in table.columns if c.startswith(("seconds", "epochs_run")) or c == "path"]
    return table.drop(columns=varying).sort_values("id").reset_index(drop=True)


def cell_dirs(runs, marker="cell.json"):
    "The cell folders of a runs folder (runs/<world>/<cell>/) holding `marker`."
    return [p.parent for p in runs.glob(f"*/*/{marker}")]


def starts(run_dir):
    log = run_dir / "attempts.jsonl"
    return [json.loads(l) for l in log.read_text().splitlines() if '"start"' in l] if log.exists() else []


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("sweep")


@pytest.fixture(scope="module")
def reference(root):
    proc = start_sweep(root, root / "reference")
    assert proc.wait(timeout=1800) == 0
    return results(root / "reference")


def test_grid_size(root):
    assert len(expand(load_profile("demo", overrides(root)))) == 7


def epochs_written(runs):
    "Epoch rows written so far, over every cell."
    return sum(max(0, len((d / "history.csv").read_text().splitlines()) - 1) for d in cell_dirs(runs, "history.csv"))


# each kill lands as soon as the sweep has made this much progress since it (re)started: events, not elapsed time
KILL_EVENTS = [("an epoch", lambda runs, at_start: epochs_written(runs) > at_start["epochs"]),
               ("a cell finished", lambda runs, at_start: len(cell_dirs(runs, "DONE")) > at_start["done"]),
               ("an epoch", lambda runs, at_start: epochs_written(runs) > at_start["epochs"]),
               ("two cells finished", lambda runs, at_start: len(cell_dirs(runs, "DONE")) > at_start["done"] + 1),
               ("an epoch", lambda runs, at_start: epochs_written(runs) > at_start["epochs"])]


def kill_on(event, proc, runs, at_start):
    "SIGKILL the sweep's process group once `event` is seen; whether the sweep was still running then."
    deadline = time.monotonic() + 1800                              # only to fail with a message, never to pass
    while not event(runs, at_start) and proc.poll() is None:
        assert time.monotonic() < deadline, "the sweep made no progress in 30 minutes"
        time.sleep(.05)
    alive = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    return alive


def test_killed_sweep_loses_and_repeats_nothing(root, reference):
    runs = root / "killed"
    finished_at_kill, landed = {}, []
    for name, event in KILL_EVENTS:
        at_start = {"epochs": epochs_written(runs), "done": len(cell_dirs(runs, "DONE"))}
        if at_start["done"] == 7: break
        proc = start_sweep(root, runs)
        if not kill_on(event, proc, runs, at_start): break
        landed.append((name, len(cell_dirs(runs, "DONE"))))
        for run_dir in cell_dirs(runs, "DONE"):
            load_run(run_dir)                                       # a finished run is complete, never half-written
            finished_at_kill.setdefault(str(run_dir.relative_to(runs)), (run_dir / "DONE").stat().st_mtime_ns)
    # the kernels of a killed sweep finish the cell they were training (another process: the kill does not reach
    # them), so on a loaded machine the work left can run out before the fifth kill; three landed mid-sweep at least
    assert len(landed) >= 3 and any(0 < done < 7 for _, done in landed), landed
    proc = start_sweep(root, runs)
    assert proc.wait(timeout=1800) == 0
    assert (sweep_status(runs).state == "done").all()
    for cell, mtime in finished_at_kill.items():
        assert (runs / cell / "DONE").stat().st_mtime_ns == mtime, f"{cell} finished before a kill and ran again"
        assert len(starts(runs / cell)) >= 1
    pd.testing.assert_frame_equal(results(runs), reference)


def test_two_sweeps_at_once_run_each_cell_once(root, reference):
    runs = root / "twice"
    procs = [start_sweep(root, runs, stdout=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    for out in outputs:                                   # each command ends with the complete table
        assert "results table (7 finished runs)" in out and "total: 7 done" in out, out[-2000:]
    assert len(cell_dirs(runs)) == 7 and all(len(starts(d)) == 1 for d in cell_dirs(runs))
    assert {len({s["pid"] for s in starts(d)}) for d in cell_dirs(runs)} == {1}
    pd.testing.assert_frame_equal(results(runs), reference)


def test_submitit_local_executor(root, reference):
    runs = root / "submitit"
    table = sweep(load_profile("demo", overrides(root)), runs, backend="submitit-local", progress=False)
    assert len(table) == 7 and (sweep_status(runs).state == "done").all()
    pd.testing.assert_frame_equal(results(runs), reference)    # one fresh kernel per cell = one kernel per worker


def first_execution_count(run_dir):
    cells = json.loads((run_dir / "train.ipynb").read_text())["cells"]
    return min(c["execution_count"] for c in cells if c["cell_type"] == "code" and c.get("execution_count"))


def kernel_pids(run_dir):
    "The kernel process of each `done` entry of the cell's attempts (None: a fresh kernel papermill started)."
    log = run_dir / "attempts.jsonl"
    return [e.get("kernel_pid") for e in map(json.loads, log.read_text().splitlines()) if e["event"] == "done"]


def test_local_workers_reuse_their_kernels(root, reference):
    reused = [pid for d in cell_dirs(root / "reference", "DONE") for pid in kernel_pids(d)]
    assert len(reused) == 7 and None not in reused and len(set(reused)) < 7   # later cells ran in a kernel already used
    assert [pid for d in cell_dirs(root / "submitit", "DONE") for pid in kernel_pids(d)] == [None] * 7   # fresh kernels
    for folder in ("reference", "submitit"):             # either way, each executed notebook counts its cells from 1
        assert [first_execution_count(d) for d in cell_dirs(root / folder, "DONE")] == [1] * 7
