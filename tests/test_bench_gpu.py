"""bench/gpu.py --dry-run (every code path of the GPU benchmark, on the CPU with the tiny DenseNet) runs to the end and
writes a JSON report whose sections are all there, whose numbers are finite and positive where they must be, whose
bf16-vs-fp32 differences are in [0, 1], whose resume check compares an interrupted run with an uninterrupted one, and
whose projected GPU-hours are the formula applied to the report's own inputs. No timing is asserted. The bench takes
its training step, loader, evaluation and VinDr-CXR counts from the package, through public names only."""
import ast, json, math, os, subprocess, sys
from pathlib import Path

import pytest

from expaware_nb.annotations import VINDR_POSITIVES, split_counts
from expaware_nb.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("throughput", "packing", "data_path", "projection", "heatmaps", "resume")

BENCH = REPO / "bench" / "gpu.py"


def private_package_imports(source: str) -> list:
    "`module.name` of every import of a private name (or private module) of expaware_nb in `source`."
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("expaware_nb"):
            found += [f"{node.module}.{a.name}" for a in node.names
                      if any(part.startswith("_") for part in [*node.module.split("."), a.name])]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("expaware_nb")
                      and any(part.startswith("_") for part in a.name.split("."))]
    return found


def test_private_package_imports_are_found():
    source = "from expaware_nb.train import TrainConfig, _fit\nimport expaware_nb._modidx\nfrom expaware_nb import train"
    assert private_package_imports(source) == ["expaware_nb.train._fit", "expaware_nb._modidx"]


def test_bench_imports_no_private_name():
    assert private_package_imports(BENCH.read_text()) == []


slow = pytest.mark.slow      # the dry run starts seven child processes: 40-75 s on a 2-core machine


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-gpu")
    out = root / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py"), "--dry-run", "--json", str(out),
                           "--dir", str(root / "work")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "== summary" in proc.stdout
    return json.loads(out.read_text())


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def in_unit_interval(x) -> bool:
    return isinstance(x, (int, float)) and 0 <= x <= 1


@slow
def test_every_section_ran(report):
    assert report["meta"]["dry_run"] is True and report["meta"]["device"] == "cpu"
    for name in SECTIONS:
        assert report[name]["ok"] is True and report[name]["error"] is None, (name, report[name].get("error"))
        assert report[name]["seconds"] >= 0


@slow
def test_throughput(report):
    t = report["throughput"]
    setting = report["meta"]["setting"]
    assert t["batches"] == {"paper": setting["paper_batch"], "largest": setting["max_batch"]}   # no OOM on the CPU
    assert [s["batch"] for s in t["batch_search"]] == [2, 4] and all(s["fits"] for s in t["batch_search"])
    runs = {(m["batch"], m["compile"]): m for m in t["measurements"]}
    assert set(runs) == {(2, False), (4, False), (2, True)}
    for m in runs.values():
        assert m["error"] is None, m["error"]
        for loss in ("bce", "ld_sqr"):
            assert positive(m[loss]["images_per_s"]) and positive(m[loss]["peak_memory_bytes"])
            assert len(m[loss]["window_images_per_s"]) == m["windows"] >= 1
            assert all(positive(r) for r in m[loss]["window_images_per_s"])
        assert m["time_ratio"] == pytest.approx(m["bce"]["images_per_s"] / m["ld_sqr"]["images_per_s"])
        assert m["memory_ratio"] == pytest.approx(m["ld_sqr"]["peak_memory_bytes"] / m["bce"]["peak_memory_bytes"])
    assert t["compile"]["timed_out"] is False and t["compile"]["returncode"] == 0


@slow
def test_packing(report):
    p = report["packing"]
    assert [r["processes"] for r in p["rounds"]] == [1, 2]
    for r in p["rounds"]:
        assert len(r["per_process_images_per_s"]) == len(r["peak_memory_bytes"]) == r["processes"]
        assert all(positive(x) for x in r["per_process_images_per_s"] + r["peak_memory_bytes"])
        assert r["aggregate_images_per_s"] == pytest.approx(sum(r["per_process_images_per_s"]))
        assert r["overlap_s"] > 0                                 # the processes were timed at the same time
    assert p["rounds"][0]["speedup_vs_1"] == 1
    best = max(p["rounds"], key=lambda r: r["aggregate_images_per_s"])
    assert p["best"] == {"processes": best["processes"], "speedup_vs_1": best["speedup_vs_1"]}


@slow
def test_data_path(report):
    d = report["data_path"]
    assert d["images"] > 0 and d["generate_s"] >= 0 and d["cache_s"] >= 0
    assert [r["num_workers"] for r in d["rows"]] == [0, 2]
    for r in d["rows"]:
        for key in ("loader_images_per_s", "train_images_per_s", "trainer_loader_train_images_per_s"):
            assert positive(r[key]), key
        assert 0 <= r["gpu_idle_share"] < 1 and 0 <= r["trainer_loader_gpu_idle_share"] < 1


def hours(scenario: dict, task_sizes: dict) -> float:
    "The projection recomputed here: the sum over runs of epochs x (train / rate + val / rate) + test / rate."
    e, seconds = scenario["epochs"], 0.
    for sizes in task_sizes.values():
        for kind, runs in scenario["runs_per_disease"].items():
            train = e * sizes["train"] / scenario["train_rates"][kind]
            val = e * sizes["val"] / scenario["val_rate"]
            seconds += runs * (train + val + sizes["test"] / scenario["test_rates"][kind])
    return seconds / 3600


@slow
def test_projection(report):
    p = report["projection"]
    assert p["epochs"] == 60 and p["runs_per_disease"] == {"bce": 1, "guided": 28}
    assert p["n_runs"] == 203 == len(p["task_sizes"]) * (1 + 7 * 4)
    positives = VINDR_POSITIVES[1]                                # any radiologist
    assert set(p["task_sizes"]) == set(positives)
    for disease, sizes in p["task_sizes"].items():
        assert (sizes["train"] + sizes["val"]) // 2 == sizes["positives"] == positives[disease]   # balanced splits
        assert sizes["val"] == 2 * split_counts(sizes["positives"], TrainConfig().val_fraction)["val"]
        assert sizes["train"] > sizes["val"] > 0 and sizes["test"] > 0
    rates = p["evaluation_rates"]
    assert all(positive(rates[k]) for k in ("val", "forward_only", "forward_gradcam"))
    assert positive(rates["test"]["bce"]) and positive(rates["test"]["guided"])
    assert [s["name"] for s in p["scenarios"]] == ["paper batch", "largest batch"]
    packing = report["packing"]["best"]["speedup_vs_1"]
    for s in p["scenarios"]:
        assert all(positive(r) for r in s["train_rates"].values())
        assert s["val_rate"] == rates["val"] and s["test_rates"] == rates["test"]
        assert positive(s["gpu_hours"]) and s["gpu_hours"] == pytest.approx(hours(s, p["task_sizes"]), rel=1e-9)
        assert s["packing_speedup"] == packing
        assert s["gpu_hours_packed"] == pytest.approx(s["gpu_hours"] / packing, rel=1e-9)
        measured = [m[loss]["images_per_s"] for m in report["throughput"]["measurements"] if m["batch"] == s["batch"]
                    for loss in ("bce", "ld_sqr")]
        assert s["train_rates"]["bce"] in measured and s["train_rates"]["guided"] in measured


@slow
def test_bf16_heatmaps(report):
    h = report["heatmaps"]
    assert h["images"] > 0 and h["steps_trained"] > 0
    assert in_unit_interval(h["map_max_abs_diff"]) and in_unit_interval(h["map_mean_abs_diff"])
    assert h["map_mean_abs_diff"] <= h["map_max_abs_diff"]
    assert set(h["metric_max_abs_diff"]) == {"top_precision", "all_precision", "coverage"}
    assert all(in_unit_interval(v) for v in h["metric_max_abs_diff"].values())
    assert all(in_unit_interval(v) for v in h["metric_fp32_mean"].values())
    assert in_unit_interval(h["fp32_zero_share"]) and h["fp32_zero_share"] < 1      # maps are not all zero
    assert isinstance(h["predictions_agree"], bool) and h["logit_max_abs_diff"] >= 0


@slow
def test_resume(report):
    r = report["resume"]
    epochs = r["config"]["epochs"]
    assert r["interrupted"] is True and epochs // 2 <= r["killed_after_epoch"] < epochs
    c = r["comparison"]
    for part in ("history", "weights", "test_metrics"):
        assert isinstance(c[part]["bit_identical"], bool) and c[part]["max_abs_diff"] >= 0
    # on the CPU with one thread a resumed run is bit-identical (as tests/test_train_resume.py asserts for the trainer)
    assert c["verdict"] == "bit-identical" and all(c[p]["max_abs_diff"] == 0 for p in ("history", "weights"))
    assert set(r["flags"]) >= {"cudnn_deterministic", "deterministic_algorithms"}
