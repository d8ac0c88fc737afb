"""The notebooks whose value is their evidence are stored with their outputs, so that a reader on the repository's
web page sees the numbers without running anything; tests/test_stored_outputs.py fails when a stored output is
stale (executing the notebook again gives other text, volatile values aside).

    python tools/store_outputs.py            # execute the evidence notebooks and store their outputs in nbs/
    python tools/store_outputs.py --check    # exit 1, naming the cells, if a stored output is stale

Only text is compared (streams, text/plain, text/markdown): the words exactly (white space aside, memory addresses
and temporary paths masked), the numbers to 0.1% (two numbers both below 1e-4 in size agree): float noise across
machines passes, a changed result does not."""
import argparse, math, re, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EVIDENCE = ["nbs/explanations/reproduction_notes.ipynb", "nbs/00_saliency.ipynb", "nbs/01_gradcam.ipynb",
            "nbs/02_losses.ipynb", "nbs/03_metrics.ipynb", "nbs/04_attribution.ipynb", "nbs/41_stats.ipynb",
            "nbs/42_claims.ipynb"]
TEXT = ("text/plain", "text/markdown")
FLOAT = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?|-?\d+[eE]-\d+")


def execute(path: str) -> nbformat.NotebookNode:
    "The notebook at `path`, executed in a fresh kernel from its own folder."
    from nbclient import NotebookClient
    nb = nbformat.read(ROOT / path, as_version=4)
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str((ROOT / path).parent)}}
                   ).execute()
    return nb


def normalised(text: str) -> str:
    "`text` with memory addresses and temporary paths masked and runs of white space made one space."
    text = re.sub(r"0x[0-9a-fA-F]+", "0x?", text)
    text = re.sub(r"/tmp/[\w./-]+", "<tmp>", text)
    return re.sub(r"\s+", " ", text).strip()


def same(a: str, b: str) -> bool:
    "Whether two normalised texts agree: the words exactly, the numbers to 0.1% (or both below 1e-4 in size)."
    words_a, words_b = FLOAT.split(a), FLOAT.split(b)
    numbers_a, numbers_b = [float(x) for x in FLOAT.findall(a)], [float(x) for x in FLOAT.findall(b)]
    return words_a == words_b and all(math.isclose(x, y, rel_tol=1e-3, abs_tol=1e-4)
                                      for x, y in zip(numbers_a, numbers_b))


def texts(nb) -> dict:
    "{cell id: the normalised text of its outputs} of the code cells that have any."
    out = {}
    for cell in nb.cells:
        if cell.cell_type != "code": continue
        parts = []
        for o in cell.get("outputs", []):
            if o.output_type == "stream": parts.append(o.text)
            elif o.output_type in ("execute_result", "display_data"):
                parts += [o.data[k] for k in TEXT if k in o.get("data", {})]
            elif o.output_type == "error": parts.append(f"{o.ename}: {o.evalue}")
        if parts: out[cell.id] = normalised("".join(parts))
    return out


def stale(path: str, executed) -> list:
    "The cells of the stored notebook at `path` whose text outputs differ from those of `executed`."
    stored, fresh = texts(nbformat.read(ROOT / path, as_version=4)), texts(executed)
    return [f"{path} cell {cid}: stored {stored.get(cid, '(nothing)')[:200]!r}, now {fresh.get(cid, '(nothing)')[:200]!r}"
            for cid in sorted(set(stored) | set(fresh)) if not same(stored.get(cid, ""), fresh.get(cid, ""))]


def store(path: str, executed):
    "Write the outputs of `executed` into the notebook at `path` (no execution counts: nbdev-clean's form)."
    nb = nbformat.read(ROOT / path, as_version=4)
    by_id = {c.id: c for c in executed.cells}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in by_id[cell.id].outputs if o.output_type != "display_data" or
                            not any(k.startswith("image/") for k in o.get("data", {}))]
            for o in cell.outputs:
                if "execution_count" in o: o.execution_count = None
            cell.execution_count = None
    nbformat.write(nb, ROOT / path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not store")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with ProcessPoolExecutor(args.workers) as pool: executed = dict(zip(EVIDENCE, pool.map(execute, EVIDENCE)))
    if args.check:
        problems = [p for path, nb in executed.items() for p in stale(path, nb)]
        for p in problems: print(p)
        if problems: print("stale stored outputs: run python tools/store_outputs.py, then nbdev-clean", file=sys.stderr)
        return 1 if problems else 0
    for path, nb in executed.items(): store(path, nb); print(f"stored the outputs of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
