"""The calibration of the claims' tests, saved: run `expaware_nb.calibration.calibrate` on the grids of the
calibration test (tests/test_calibration.py) and write docs/calibration.csv (every rate) and docs/calibration.md
(the table the README quotes: per claim, the share of simulated grids where it was held and not held, per
scenario), then list any rate that breaks the rules. A few minutes on two cores.

    python tools/calibrate.py [--workers N]
"""
import argparse, os, sys
from pathlib import Path

from expaware_nb.calibration import CALIBRATION_GRIDS, calibrate, calibration_failures, calibration_table
from expaware_nb.results import to_markdown
from expaware_nb.runs import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    rates = calibrate(CALIBRATION_GRIDS, workers=args.workers)
    atomic_write(ROOT / "docs/calibration.csv", lambda p: rates.to_csv(p, index=False))
    atomic_write(ROOT / "docs/calibration.md", lambda p: p.write_text(to_markdown(calibration_table(rates))))
    failures = calibration_failures(rates)
    print("\n".join(failures) or "every claim keeps its error rate and finds the paper's effects")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
