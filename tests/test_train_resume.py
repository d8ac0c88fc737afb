"""A training run killed (SIGKILL) at five moments, or stopped by a scheduler's signal (SIGTERM, SIGUSR2) in the
middle of an epoch, and started again ends with exactly the files of a run never interrupted (bit-identical on the
CPU): history, test metrics, per-sample table, heatmaps, model weights. A folder without DONE is never a finished
run. Every process runs with one thread: CPU results are bit-identical for a given thread count, not across thread
counts."""
import json, os, signal, subprocess, sys, time
from dataclasses import asdict

import numpy as np
import pytest
import pandas as pd
import torch

from expaware_nb.runs import is_done
from expaware_nb.train import TrainConfig

pytestmark = pytest.mark.slow      # trains and kills runs

SCRIPT = ("import json, sys; from expaware_nb.train import TrainConfig, train_run; "
          "train_run(TrainConfig(**json.loads(sys.argv[1])), sys.argv[2])")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def start(config, run_dir):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(asdict(config)), str(run_dir)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    return TrainConfig(data=str(root / "synth"), synthetic={"n_train": 100, "n_test": 30, "seed": 1},
                       disease="Lung Opacity",
                       formulation="logit_sqr", alpha=1., arch="densenet_tiny", weights=None, image_size=64, epochs=6,
                       batch_size=8, lr=1e-3, cache_dir=str(root / "cache"), panel_size=3)


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    proc = start(config, run_dir)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    return run_dir


def epochs_done(run_dir):
    try: return len(pd.read_csv(run_dir / "history.csv"))
    except (FileNotFoundError, pd.errors.EmptyDataError): return 0


def without_timings(d): return {k: v for k, v in d.items() if not k.startswith(("seconds", "epochs_run"))}


def wait_for_epochs(proc, run_dir, n):
    "Wait until the run has written `n` epochs (an event), or has ended; whether it is still running."
    deadline = time.monotonic() + 1800                      # only to fail with a message, never to pass
    while epochs_done(run_dir) < n and proc.poll() is None:
        assert time.monotonic() < deadline, "no progress in 30 minutes"
        time.sleep(.01)
    return proc.poll() is None


def assert_same_run(run_dir, reference):
    "The finished run's files equal the uninterrupted reference's, bit for bit (timings aside)."
    assert is_done(run_dir)
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert without_timings(metrics) == without_timings(json.loads((reference / "test_metrics.json").read_text()))
    cols = lambda h: h.drop(columns="seconds")
    pd.testing.assert_frame_equal(cols(pd.read_csv(run_dir / "history.csv")),
                                  cols(pd.read_csv(reference / "history.csv")))
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "per_sample.csv"), pd.read_csv(reference / "per_sample.csv"))
    with np.load(run_dir / "heatmaps.npz") as a, np.load(reference / "heatmaps.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    for name in ("best.pt", "checkpoint.pt"):
        mine, theirs = (torch.load(d / name, weights_only=True) for d in (run_dir, reference))
        mine, theirs = mine.get("model", mine), theirs.get("model", theirs)
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)


def test_killed_run_resumes_to_identical_results(config, reference, tmp_path):
    run_dir, kills = tmp_path / "run", 0
    for target in (0, 1, 2, 3, 5):                 # SIGKILL as soon as `target` epochs are written: during the next
        proc = start(config, run_dir)
        kills += wait_for_epochs(proc, run_dir, target)
        proc.send_signal(signal.SIGKILL); proc.wait()
    assert kills == 5, "a kill came after the run had ended: the test proves nothing"
    proc = start(config, run_dir)
    assert proc.wait(timeout=1800) == 0, proc.stderr.read()
    assert_same_run(run_dir, reference)


def test_signalled_run_saves_mid_epoch_and_resumes_identically(config, reference, tmp_path):
    "A scheduler's SIGTERM (preemption) or SIGUSR2 (time limit) saves at the next batch boundary: nothing is redone."
    run_dir = tmp_path / "run"
    for target, sig in ((1, signal.SIGTERM), (2, signal.SIGUSR2), (4, signal.SIGTERM)):
        proc = start(config, run_dir)
        assert wait_for_epochs(proc, run_dir, target), "the run ended before the signal: the test proves nothing"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=1800)
        assert proc.returncode != 0 and "TrainingStopped" in err, err[-2000:]
        saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
        assert saved["partial"] and saved["partial"]["epoch"] == saved["epoch"] + 1, saved["partial"]
        assert saved["partial"]["batches"] >= 1 and not (run_dir / "STOP").exists()
    proc = start(config, run_dir)
    assert proc.wait(timeout=1800) == 0, proc.stderr.read()
    assert_same_run(run_dir, reference)
