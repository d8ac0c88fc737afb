"""The image cache survives SIGKILL: a killed build resumes where it stopped and ends identical to an
uninterrupted build; a half-written cache is never opened; two builds of one cache do not collide."""
import os, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expaware_nb.cache import Cache, build_cache
from expaware_nb.annotations import read_annotations
from expaware_nb.synth import make_synthetic_dataset

pytestmark = pytest.mark.slow      # cache builds killed and resumed

SIZE = 96


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("data") / "synth", n_train=500, n_test=100, seed=11,
                                  progress=False)


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    return build_cache(read_annotations(dataset), tmp_path_factory.mktemp("ref"), size=SIZE, workers=1, progress=False)


def start_build(dataset, out):
    return subprocess.Popen([sys.executable, "-m", "expaware_nb.cli", "cache", str(dataset), "--size", str(SIZE),
                             "--out", str(out), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def done_count(out):
    status = list(Path(out).glob("*.partial/status.npy"))
    if not status: return 0
    try: return int((np.load(status[0], mmap_mode="r") != 0).sum())
    except (ValueError, OSError): return 0          # header not written yet


def assert_same_cache(cache, reference):
    pd.testing.assert_frame_equal(cache.index.drop(columns="path"), reference.index.drop(columns="path"))
    np.testing.assert_array_equal(cache.images, reference.images)
    assert cache.manifest == reference.manifest


def test_killed_build_resumes_and_matches_uninterrupted(dataset, reference, tmp_path):
    out, n = tmp_path / "cache", len(reference.index)
    for fraction in (.2, .5, .8):
        proc = start_build(dataset, out)
        deadline = time.time() + 120
        while done_count(out) < fraction * n and proc.poll() is None and time.time() < deadline: time.sleep(.005)
        seen = done_count(out)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not list(out.glob("*px-*[0-9a-f]/manifest.json")), "killed before the end, yet a finished cache exists"
        with pytest.raises(FileNotFoundError): Cache.open(next(out.glob("*.partial")).with_suffix(""))
        assert done_count(out) >= seen, "progress recorded before the kill was lost"
    assert 0 < done_count(out) < n, "the kills did not land mid-build; the test proves nothing"
    finished = subprocess.run([sys.executable, "-m", "expaware_nb.cli", "cache", str(dataset), "--size", str(SIZE),
                               "--out", str(out), "--workers", "2"], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"{n} images cached, {len(reference.rejected)} rejected" in finished.stdout    # the damaged files
    assert_same_cache(Cache.open(next(p.parent for p in out.glob("*/manifest.json"))), reference)
    assert not list(out.glob("*.partial"))


def test_two_builds_at_once_share_one_cache(dataset, reference, tmp_path):
    out = tmp_path / "cache"
    procs = [start_build(dataset, out) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert len(list(out.glob("*/manifest.json"))) == 1
    assert_same_cache(Cache.open(next(p.parent for p in out.glob("*/manifest.json"))), reference)
