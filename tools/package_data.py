"""Copy what the package runs and ships into expaware_nb/, so that an installed package (a wheel, `pip install .`)
works from any folder without the checkout:

    nbs/experiments/train.ipynb -> expaware_nb/notebooks/train.ipynb      (the notebook each sweep cell executes)
    nbs/paper/*.ipynb           -> expaware_nb/notebooks/paper/           (the notebooks `expaware paper` executes)
    configs/*.yaml              -> expaware_nb/profiles/                  (the profiles `expaware sweep NAME` finds)

The sources stay in nbs/ and configs/; the copies are generated, like the modules `nbdev-export` writes, and
tests/check_sync.sh fails when they differ from their sources. Run after editing any of them:

    nbdev-clean && nbdev-export && python tools/package_data.py
"""
import shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIES = [("nbs/experiments", "train.ipynb", "expaware_nb/notebooks"),
          ("nbs/paper", "*.ipynb", "expaware_nb/notebooks/paper"), ("configs", "*.yaml", "expaware_nb/profiles")]


def mirror(source: Path, pattern: str, target: Path) -> list:
    "Make `target` hold exactly the files of `source` matching `pattern`; return what changed."
    target.mkdir(parents=True, exist_ok=True)
    wanted = {p.name: p for p in source.glob(pattern)}
    changed = [p for p in target.glob(pattern) if p.name not in wanted]
    for stale in changed: stale.unlink()
    for name, src in sorted(wanted.items()):
        dst = target / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dst); changed.append(dst)
    return changed


def main() -> int:
    changed = [p for source, pattern, target in COPIES for p in mirror(ROOT / source, pattern, ROOT / target)]
    for p in changed: print(f"updated {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
