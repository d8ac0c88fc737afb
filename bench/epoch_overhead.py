"""Per-epoch cost of the explanation loss in a real training run, on this machine's CPU.

For each model (the tiny DenseNet at 128 px, the demo's; DenseNet-121 at 224 px, the paper's), trains
the same run twice -- BCE only, and BCE + 1.0 x explanation loss (logit_sqr) -- each in a fresh process,
interleaved (bce, exp, bce, exp, ...). Reports the median epoch wall time (history.csv `seconds`, epochs
after the first, validation included) and, from separate one-epoch runs whose glibc returns large blocks
to the OS (so RSS follows live memory; this slows them, hence the separate runs), the peak RSS of the
training above the RSS before it; medians over repeats, and the ratios exp / bce.

    python bench/epoch_overhead.py [--dir /tmp/expaware-bench-epoch]
"""
import argparse, dataclasses, json, os, statistics, subprocess, sys
from pathlib import Path

import pandas as pd

from expaware_nb.train import TrainConfig, run_data

SETUPS = {
    "densenet_tiny@128": dict(arch="densenet_tiny", image_size=128, epochs=5, batch_size=16, n_train=600, repeats=3),
    "densenet121@224": dict(arch="densenet121", image_size=224, epochs=3, batch_size=12, n_train=120, repeats=2),
}
CHILD = """
import json, sys, shutil
from expaware_nb.train import TrainConfig, train_run
def kib(field): return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(field + ':'))
config, run_dir = TrainConfig(**json.loads(sys.argv[1])), sys.argv[2]
shutil.rmtree(run_dir, ignore_errors=True)
before = kib('VmRSS'); open('/proc/self/clear_refs', 'w').write('5')
train_run(config, run_dir)
print(json.dumps({'peak_above_start': (kib('VmHWM') - before) * 1024}))
"""
MEMORY_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def config_for(setup: dict, root: Path, formulation: str) -> TrainConfig:
    s = {k: v for k, v in setup.items() if k != "repeats"}
    n_train = s.pop("n_train")
    return TrainConfig(data=str(root / f"synth{n_train}"), synthetic={"n_train": n_train, "n_test": 40, "seed": 0},
                       disease="Lung Opacity", weights=None, lr=1e-3, cache_dir=str(root / "cache"), panel_size=2,
                       formulation=formulation, alpha=1. if formulation != "bce" else 0., **s)


def run_child(config: TrainConfig, run_dir: Path, memory: bool) -> float:
    "Median epoch seconds (timing run) or peak RSS above start in bytes (memory run, one epoch)."
    if memory: config = dataclasses.replace(config, epochs=1)
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(dataclasses.asdict(config)), str(run_dir)],
                         capture_output=True, text=True, env=MEMORY_ENV if memory else os.environ, check=True).stdout
    if memory: return json.loads(out.strip().splitlines()[-1])["peak_above_start"]
    return statistics.median(pd.read_csv(run_dir / "history.csv").seconds.iloc[1:])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=Path("/tmp/expaware-bench-epoch"))
    a = p.parse_args()
    for name, setup in SETUPS.items():
        run_data(config_for(setup, a.dir, "bce"))                      # data and cache made once, outside the timing
        results = {(form, memory): [] for memory in (False, True) for form in ("bce", "logit_sqr")}
        for r in range(setup["repeats"]):
            for form, memory in results:
                results[form, memory].append(run_child(config_for(setup, a.dir, form), a.dir / f"{name}-{form}",
                                                       memory))
        keys = [("bce", False), ("logit_sqr", False), ("bce", True), ("logit_sqr", True)]
        tb, te, mb, me = (statistics.median(results[k]) for k in keys)
        print(f"{name}: epoch {tb:.2f}s (bce) vs {te:.2f}s (exp): time ratio {te / tb:.3f}; "
              f"peak {mb / 2**20:.0f} MiB vs {me / 2**20:.0f} MiB: memory ratio {me / mb:.3f}  ({setup['repeats']} "
              f"repeats)", flush=True)


if __name__ == "__main__":
    main()
