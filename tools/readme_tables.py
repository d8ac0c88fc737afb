"""Fill the README's generated tables from the saved outputs they quote, so that no number there is typed by hand.

A block of README.md between `<!-- table: PATH -->` and `<!-- end table -->` is replaced by the content of PATH
(relative to the repository root). The saved outputs:

    docs/readme/claims_short.md   the demo's claims table (`figures/claims_short.md` of an `expaware demo` run)
    docs/calibration.md           the calibration of the claims' tests (`python tools/calibrate.py`)

    python tools/readme_tables.py [--demo-figures FIGURES]   # first copy a demo's claims table into docs/readme/
    python tools/readme_tables.py --check                    # exit 1 if README.md is not up to date

tests/check_docs.py runs the check."""
import argparse, re, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- table: (\S+) -->\n)(.*?)(<!-- end table -->)", re.S)


def filled(readme: str) -> str:
    "The README with every table block replaced by the file it names."
    return BLOCK.sub(lambda m: m.group(1) + (ROOT / m.group(2)).read_text() + m.group(4), readme)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-figures", help="figures folder of an `expaware demo` run: take its claims table")
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    args = parser.parse_args()
    if args.demo_figures: shutil.copyfile(Path(args.demo_figures) / "claims_short.md", ROOT / "docs/readme/claims_short.md")
    readme = (ROOT / "README.md").read_text()
    if args.check:
        if filled(readme) != readme:
            print("README.md's generated tables differ from their saved outputs: run python tools/readme_tables.py",
                  file=sys.stderr)
            return 1
        return 0
    (ROOT / "README.md").write_text(filled(readme))
    return 0


if __name__ == "__main__":
    sys.exit(main())
