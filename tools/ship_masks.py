"""Copy a finished `masks` sweep (box against mask supervision) into results/masks/, the saved outputs the repository
ships and the README's mask table reads.

For every finished run: config.json, history.csv, test_metrics.json, per_sample.csv and DONE, in
results/masks/<run id>/ (seed 0's runs also keep their heatmap panel, heatmaps.npz); MANIFEST.json records the code,
the environment and the sweep's wall time.

    python tools/ship_masks.py runs/masks --wall-seconds 480 [--out results/masks]
"""
import argparse, shutil, sys
from pathlib import Path

from expaware_nb.runs import collect_runs
from ship_replication import ROOT, ship_run, write_manifest

BUDGET_MB = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="the finished masks runs folder")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "masks")
    parser.add_argument("--wall-seconds", type=float, required=True, help="wall time of the sweep that made them")
    args = parser.parse_args()
    table = collect_runs(args.runs)
    if table.empty: sys.exit(f"no finished run under {args.runs}")
    shutil.rmtree(args.out, ignore_errors=True)
    for r in table.itertuples(): ship_run(Path(r.path), args.out / r.id, panel=r.seed == 0, weights=False)
    write_manifest(args.out, len(table), args.wall_seconds)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 2 ** 20
    print(f"{len(table)} runs in {args.out}: {size:.1f} MB (budget {BUDGET_MB} MB)")
    return 0 if size <= BUDGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
