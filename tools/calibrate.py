"""The calibration of the claims' tests, saved: run `expaware_nb.calibration.calibrate` on the grids of the
calibration test (tests/test_calibration.py), write every rate to docs/calibration.csv (the README's table is
generated from it by tools/readme_tables.py), then list any rate that breaks the rules. A few minutes on two cores.

    python tools/calibrate.py [--workers N]
"""
import argparse, os, sys
from pathlib import Path

from expaware_nb.calibration import CALIBRATION_GRIDS, calibrate, calibration_failures
from expaware_nb.runs import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    rates = calibrate(CALIBRATION_GRIDS, workers=args.workers)
    atomic_write(ROOT / "docs/calibration.csv", lambda p: rates.to_csv(p, index=False))
    failures = calibration_failures(rates)
    print("\n".join(failures) or "every claim keeps its error rate and finds the paper's effects")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
