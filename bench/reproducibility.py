"""What is reproducible: one cell of the replication (default: the shortcut world's Lung Opacity, LD-Sqr, alpha 1,
seed 0) trained again here, twice with one thread and once with two, each compared with the others and with the
shipped run of the same cell (results/replication). Writes bench/results/reproducibility.json (the README's
numbers are generated from it) and prints it.

    python bench/reproducibility.py [--cell shortcut/lung-opacity__logit_sqr__a1__s0__XXXXXXXX]

Same machine, same threads: expected identical (the trainer seeds everything; CPU kernels are deterministic for a
fixed thread count). Other thread counts or other machines: floating-point sums in another order, so the runs drift
apart like another draw; the replication's spread over seeds says how far."""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

import pandas as pd

from expaware_nb.runs import PER_SAMPLE_FILE, TEST_METRICS_FILE, read_json, write_json
from expaware_nb.profiles import expand, load_profile

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("accuracy", "common_all_precision", "common_top_precision", "common_coverage")


def train(cell_id: str, run_dir: Path, threads: int, data_root: Path) -> dict:
    "Train the replication's cell in a fresh process with `threads` threads; its test metrics and predictions."
    code = (f"import torch, sys; torch.set_num_threads({threads}); from expaware_nb.profiles import expand, load_profile; "
            f"from expaware_nb.train import train_run; "
            f"c = next(c for c in expand(load_profile('replication'), {str(data_root)!r}) if c.id == {cell_id!r}); "
            f"train_run(c.config, {str(run_dir)!r})")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.time()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    return {"seconds": time.time() - t0, "metrics": {m: read_json(run_dir / TEST_METRICS_FILE)[m] for m in METRICS},
            "probs": pd.read_csv(run_dir / PER_SAMPLE_FILE).prob.tolist()}


def compare(a: dict, b: dict) -> dict:
    "Largest difference in a test metric and in a predicted probability, and whether everything is identical."
    metric = max(abs(a["metrics"][m] - b["metrics"][m]) for m in METRICS)
    prob = max(abs(x - y) for x, y in zip(a["probs"], b["probs"]))
    return {"max_metric_difference": metric, "max_probability_difference": prob, "identical": metric == 0 and prob == 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", help="a replication cell id (default: shortcut, Lung Opacity, LD-Sqr, alpha 1, seed 0)")
    parser.add_argument("--data-root", type=Path, default=Path("."),
                        help="folder holding data/replication (made there if absent)")
    args = parser.parse_args()
    cells = expand(load_profile("replication"), args.data_root)
    cell = args.cell or next(c.id for c in cells if c.id.startswith("shortcut/lung-opacity__logit_sqr__a1__s0__"))
    shipped_dir = ROOT / "results" / "replication" / cell
    shipped = {"metrics": {m: read_json(shipped_dir / TEST_METRICS_FILE)[m] for m in METRICS},
               "probs": pd.read_csv(shipped_dir / PER_SAMPLE_FILE).prob.tolist()}
    with tempfile.TemporaryDirectory() as tmp:
        one, again, two = (train(cell, Path(tmp) / name, threads, args.data_root.resolve())
                           for name, threads in (("one", 1), ("again", 1), ("two", 2)))
    report = {"cell": cell, "cpu": next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text()
                                         .splitlines() if l.startswith("model name")), ""),
              "same_machine_same_threads": compare(one, again), "one_thread_vs_two": compare(one, two),
              "here_vs_shipped": compare(one, shipped), "seconds": [one["seconds"], again["seconds"], two["seconds"]]}
    write_json(ROOT / "bench" / "results" / "reproducibility.json", report)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
