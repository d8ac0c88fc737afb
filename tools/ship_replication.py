"""Copy a finished `replication` sweep into results/replication/, the saved outputs the repository ships.

For every finished run of each world: config.json, history.csv, test_metrics.json, per_sample.csv and DONE (what
the paper notebooks read), in results/replication/<world>/<run id>/. Besides, within the size budget:
  - the heatmap panels (heatmaps.npz) of the runs Figure 3 and the viewer show (PANEL: one finding, seed 0);
  - the tested weights of a few of those runs (WEIGHTS: BCE, and LD-Sqr and P-Sqr at alpha 1, the Figure 3 pair and
    the formulation whose probabilities saturate first), as a checkpoint holding the model alone: the equivalence
    check of the seven scores' heatmaps reloads them;
  - each world's test-image markers (ground_truth.csv, test split: image_id and cues) and Figure 1's inputs;
  - MANIFEST.json: the code, the environment and the wall time that produced them.
It also writes the spread over seeds of each shortcut-world cell into the package
(expaware_nb/reference/replication_shortcut_spread.csv), which `expaware demo` checks its cells against.

    python tools/ship_replication.py runs/replication --wall-seconds 4800 [--out results/replication]
"""
import argparse, json, platform, shutil, subprocess, sys, time
from pathlib import Path

import pandas as pd
import torch

from expaware_nb.figures import save_fig1_inputs
from expaware_nb.results import load_results, reference_spread
from expaware_nb.runs import (CHECKPOINT_FILE, CONFIG_FILE, DONE_FILE, HEATMAPS_FILE, HISTORY_FILE, PER_SAMPLE_FILE,
                              TEST_METRICS_FILE, atomic_write, collect_runs, read_json, tested_weights, write_json)
from expaware_nb.synth import SYNTHETIC_VERSION, WORLDS

ROOT = Path(__file__).resolve().parents[1]
KEEP = (CONFIG_FILE, HISTORY_FILE, TEST_METRICS_FILE, PER_SAMPLE_FILE, DONE_FILE)
PANEL = {"disease": "Pleural effusion", "seed": 0}
WEIGHTS = {("bce", 0.), ("logit_sqr", 1.), ("prob_sqr", 1.)}   # (formulation, alpha) of PANEL's runs
BUDGET_MB = 25


def ship_run(run: Path, out: Path, panel: bool, weights: bool):
    out.mkdir(parents=True, exist_ok=True)
    for name in KEEP: shutil.copyfile(run / name, out / name)
    if panel: shutil.copyfile(run / HEATMAPS_FILE, out / HEATMAPS_FILE)
    if weights and read_json(run / CONFIG_FILE)["select"] == "last":
        atomic_write(out / CHECKPOINT_FILE, lambda p: torch.save({"model": tested_weights(run)}, p))


def ship_world(runs: Path, out: Path) -> int:
    "Copy one world's runs; return how many."
    table = collect_runs(runs)
    for r in table.itertuples():
        in_panel = r.disease == PANEL["disease"] and r.seed == PANEL["seed"]
        ship_run(Path(r.path), out / r.id, in_panel, in_panel and (r.formulation, r.alpha) in WEIGHTS)
    data = Path(read_json(Path(table.path.iloc[0]) / CONFIG_FILE)["data"])
    truth = pd.read_csv(data / "ground_truth.csv", keep_default_na=False)
    truth[truth.split == "test"][["image_id", "cues"]].drop_duplicates().to_csv(out / "ground_truth.csv", index=False)
    save_fig1_inputs(runs, out)
    return len(table)


def write_manifest(out: Path, runs, wall_seconds: float):
    "MANIFEST.json of shipped outputs: how many runs, the code, the environment and the sweep's wall time."
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    write_json(out / "MANIFEST.json", {
        "runs": runs, "synthetic_version": SYNTHETIC_VERSION, "code": git("describe", "--always", "--dirty"),
        "torch": torch.__version__, "python": platform.python_version(), "cpu": cpu,
        "cores": len(__import__("os").sched_getaffinity(0)), "device": "cpu", "sweep_wall_seconds": wall_seconds,
        "shipped": time.strftime("%Y-%m-%d")})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="the finished replication runs folder (with its data at hand)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "replication")
    parser.add_argument("--wall-seconds", type=float, required=True, help="wall time of the sweep that made them")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    counts = {w: ship_world(args.runs / w, args.out / w) for w in WORLDS if (args.runs / w).is_dir()}
    spread = reference_spread(load_results(args.out / "shortcut"))
    reference = ROOT / "expaware_nb" / "reference"; reference.mkdir(exist_ok=True)
    atomic_write(reference / "replication_shortcut_spread.csv", lambda p: spread.to_csv(p, index=False))
    write_manifest(args.out, counts, args.wall_seconds)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 2 ** 20
    print(f"{sum(counts.values())} runs ({counts}) in {args.out}: {size:.1f} MB (budget {BUDGET_MB} MB)")
    return 0 if size <= BUDGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
