"""Count the export cells of nbs/ that are followed by a test or an example, fastcore's rhythm: prose, one
definition, then a code cell that uses it (Markdown between them is fine). Lists the export cells that are not.

    python tools/notebook_rhythm.py            # counts per notebook and the cells without a test or example
    python tools/notebook_rhythm.py --check    # exit 1 when any export cell is not followed by one
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def directives(source: str) -> set:
    "The nbdev directives (`#| export`, ...) of a cell's source."
    return {line[3:].strip().split()[0] for line in source.splitlines() if line.startswith("#| ") and line[3:].strip()}


def is_export(cell: dict) -> bool:
    return cell["cell_type"] == "code" and bool(directives("".join(cell["source"])) & {"export", "exports"})


def unfollowed(cells: list) -> list:
    "Indices of the export cells whose next code cell is another export cell, or that end the notebook."
    code = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    out = []
    for j, i in enumerate(code):
        if not is_export(cells[i]): continue
        if j + 1 == len(code) or is_export(cells[code[j + 1]]): out.append(i)
    return out


def first_line(cell: dict) -> str:
    lines = [l for l in "".join(cell["source"]).splitlines() if l.strip() and not l.startswith("#|")]
    return lines[0][:90] if lines else ""


def main(argv) -> int:
    total = missing = 0
    for path in sorted((ROOT / "nbs").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        exports = [i for i, c in enumerate(cells) if is_export(c)]
        bad = unfollowed(cells)
        total += len(exports); missing += len(bad)
        if exports: print(f"{path.name}: {len(exports) - len(bad)} of {len(exports)} export cells followed by a test or example")
        for i in bad: print(f"    cell {i} ({cells[i].get('id', '?')}): {first_line(cells[i])}")
    print(f"all notebooks: {total - missing} of {total} export cells followed by a test or example")
    return 1 if "--check" in argv and missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
