"""Where `expaware demo`'s wall time goes, phase by phase, from nothing.

Runs the demo's own steps in a new temporary folder (so nothing is reused: the synthetic dataset is generated,
its cache built, every cell trained, the paper notebooks executed) and prints the wall time of each phase:
  data   -- make_synthetic_dataset (the embedded synthetic chest X-rays, DICOM files and VinDr-format CSVs);
  cache  -- build_cache at the profile's image size;
  runs   -- the demo grid through the local sweep (`expaware demo`'s worker count), and per cell: its wall time,
            the time its epochs took (training and validation, from history.csv) and the rest (fixed cost:
            kernel, imports, data set-up, test evaluation, the notebook's figures), for the first cell of each
            worker (which starts the worker's kernel and imports) and for the later ones (a reused kernel);
  paper  -- the paper notebooks (figures, tables, claims) on the finished runs.
The phases add up to what `time expaware demo` measures, less the CLI's start (about 1 s).

    python bench/demo_time.py [--workers N] [--set FIELD=VALUE ...] [--keep DIR]
"""
import argparse, json, logging, os, shutil, statistics, tempfile, time
from pathlib import Path

import pandas as pd

from expaware_nb.annotations import read_annotations
from expaware_nb.cache import build_cache
from expaware_nb.render import render_paper
from expaware_nb.runs import ATTEMPTS_FILE, CELL_RESULT_FILE, read_history, read_json
from expaware_nb.profiles import expand, load_profile
from expaware_nb.sweep import sweep
from expaware_nb.synth import make_synthetic_dataset


def timed(fn, *args, **kwargs) -> tuple:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def cell_times(runs: Path) -> pd.DataFrame:
    "One row per finished cell: wall, epochs, fixed = wall - epochs, and whether it was its worker's first cell."
    rows = []
    for result in runs.glob(f"**/{CELL_RESULT_FILE}"):
        run = result.parent
        starts = [json.loads(line) for line in (run / ATTEMPTS_FILE).read_text().splitlines() if '"start"' in line]
        wall = read_json(result)["seconds"]
        epochs = read_history(run).seconds.sum()
        rows.append({"id": run.name, "pid": starts[-1]["pid"], "started": starts[-1]["time"], "wall": wall,
                     "epochs": epochs, "fixed": wall - epochs})
    table = pd.DataFrame(rows).sort_values("started")
    table["first_of_worker"] = ~table.pid.duplicated()
    return table


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="as `expaware demo` (cores)")
    p.add_argument("--set", action="append", default=[], help="override a profile field, as on the CLI")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one, removed)")
    a = p.parse_args()
    logging.getLogger("expaware_nb").setLevel(logging.ERROR)   # the synthetic data's deliberately damaged files
    root = a.keep or Path(tempfile.mkdtemp(prefix="expaware-demo-time-"))
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()): raise SystemExit(f"{root} is not empty: the benchmark starts from nothing")
    try:
        profile = load_profile("demo", [*a.set, f"data={root}/synthetic", f"cache_dir={root}/cache",
                                        f"runs={root}/runs"])
        config = expand(profile)[0].config
        print(f"demo profile: {len(expand(profile))} cells, {config.arch} at {config.image_size} px, "
              f"{config.epochs} epochs, {a.workers} workers, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
              flush=True)
        phases = {}
        _, phases["data"] = timed(make_synthetic_dataset, config.data, **{**config.synthetic, "progress": False})
        _, phases["cache"] = timed(build_cache, read_annotations(config.data), config.cache_dir,
                                   size=config.image_size, progress=False)
        _, phases["runs"] = timed(sweep, profile, profile["runs"], workers=a.workers, progress=False)
        world_runs = Path(profile["runs"]) / profile["worlds"][0] if profile["worlds"] else Path(profile["runs"])
        errors, phases["paper"] = timed(render_paper, world_runs, root / "figures", min(2, a.workers))
        failed = {name: e for name, e in errors.items() if e}
        cells = cell_times(Path(profile["runs"]))
    finally:
        if a.keep is None: shutil.rmtree(root, ignore_errors=True)
    total = sum(phases.values())
    print(f"\n{'phase':<8}{'seconds':>9}{'share':>8}")
    for name, seconds in phases.items(): print(f"{name:<8}{seconds:9.1f}{seconds / total:8.0%}")
    print(f"{'total':<8}{total:9.1f}")
    print(f"\nper cell ({len(cells)} cells, medians in seconds):")
    for label, part in (("first cell of a worker", cells[cells.first_of_worker]),
                        ("later cells (kernel reused)", cells[~cells.first_of_worker])):
        if len(part):
            print(f"  {label:<28} n={len(part):2d}  wall {statistics.median(part.wall):5.1f}  epochs "
                  f"{statistics.median(part.epochs):5.1f}  fixed {statistics.median(part.fixed):4.1f}")
    print(f"  all cells: {cells.wall.sum():.0f} s of cell time in {phases['runs']:.0f} s of wall time "
          f"({cells.fixed.sum() / cells.wall.sum():.0%} outside the epochs)")
    if failed: raise SystemExit(f"paper notebooks failed: {failed}")


if __name__ == "__main__":
    main()
