"""Fail when the notebooks stop reading as documents or the repository stops standing alone.

1. Every notebook under nbs/ opens with a Markdown title cell: `# Title`, then a `> summary` line.
2. No Markdown cell is prose written as comment lines (`# ` before every line): JupyterLab, GitHub and
   nbdev render each such line as a heading.
3. Reading order: a numbered notebook's code uses only the modules of notebooks numbered before it.
4. Every relative Markdown link of a notebook to another notebook or file of the repository resolves.
5. Nothing the repository ships points outside it (to a shared folder or notes file that a clone does
   not have) or to a numbered issue of the project's tracker.
6. The README's generated tables are their saved outputs (tools/readme_tables.py --check).

Prints one line per problem (file, cell, what) and exits 1 if there is any. Run from anywhere."""
import json, re, subprocess, sys
from pathlib import Path

ROOT = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).parent).stdout.strip())
OUTSIDE = [re.compile(r"\.\./" + "shared"), re.compile("REPRODUCTION" + "_NOTES"),
           re.compile(r"\bissue" + r"s?\s+#?\d+", re.I)]
SHIPPED = (".ipynb", ".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".cfg", ".txt")


def shipped_files() -> list:
    "Tracked and untracked-but-not-ignored files of the repository."
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return [ROOT / f for f in out if f and (ROOT / f).is_file()]


def written_as_comments(text: str) -> bool:
    "A Markdown cell whose every line is a `# ` comment (or a bare `#`): prose that renders as a wall of headings."
    lines = [l for l in text.split("\n") if l.strip()]
    return any(l.strip() == "#" for l in lines) or (len(lines) >= 2 and all(l.startswith("# ") for l in lines))


def notebook_problems(path: Path) -> list:
    name = path.relative_to(ROOT)
    cells = json.loads(path.read_text())["cells"]
    problems = []
    first = "".join(cells[0]["source"]) if cells else ""
    lines = [l for l in first.split("\n") if l.strip()]
    titled = bool(lines) and re.match(r"# \S", lines[0]) and not lines[0].startswith("# #")
    if not cells or cells[0]["cell_type"] != "markdown" or not titled:
        problems.append(f"{name} cell 0: the first cell must be a Markdown title `# Title`")
    elif not any(l.startswith("> ") for l in lines[1:3]):
        problems.append(f"{name} cell 0: the title must be followed by a `> one-line summary`")
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown": continue
        for target in re.findall(r"\]\(([^)\s]+?\.(?:ipynb|py|md|yaml))\)", "".join(cell["source"])):
            if "://" not in target and not (path.parent / target).exists():
                problems.append(f"{name} cell {i}: link to {target}, which does not exist")
        if written_as_comments("".join(cell["source"])):
            problems.append(f"{name} cell {i}: Markdown written as `# ` comment lines (renders as headings); write "
                            f"it as Markdown")
    return problems


def order_problems(notebooks: list) -> list:
    "Numbered notebooks that import the module of a notebook numbered at or after them."
    number, module = {}, {}
    for nb in notebooks:
        m = re.match(r"(\d+)_", nb.name)
        exp = re.search(r"#\| default_exp (\w+)", nb.read_text())
        if m and exp: number[exp.group(1)], module[nb] = int(m.group(1)), exp.group(1)
    problems = []
    for nb, own in module.items():
        code = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        used = set(re.findall(r"expaware_nb\.(\w+)", code)) | set(re.findall(r"from expaware_nb import (\w+)", code))
        for later in sorted(u for u in used if u in number and u != own and number[u] >= number[own]):
            problems.append(f"{nb.relative_to(ROOT)}: uses expaware_nb.{later}, which comes later (notebook "
                            f"{number[later]:02d})")
    return problems


def reference_problems(path: Path) -> list:
    if path.suffix not in SHIPPED and path.name != "run": return []
    problems = []
    for n, line in enumerate(path.read_text(errors="replace").split("\n"), 1):
        for pattern in OUTSIDE:
            if m := pattern.search(line):
                problems.append(f"{path.relative_to(ROOT)} line {n}: refers to {m.group(0)!r}, outside the repository")
    return problems


def main() -> int:
    files = shipped_files()
    notebooks = sorted(f for f in files if f.suffix == ".ipynb" and f.is_relative_to(ROOT / "nbs")
                       and ".ipynb_checkpoints" not in f.parts)
    problems = [p for nb in notebooks for p in notebook_problems(nb)] + order_problems(notebooks)
    problems += [p for f in sorted(files) for p in reference_problems(f)]
    readme = subprocess.run([sys.executable, str(ROOT / "tools/readme_tables.py"), "--check"], capture_output=True,
                            text=True)
    if readme.returncode: problems.append(readme.stderr.strip())
    for p in problems: print(f"FAIL: {p}", file=sys.stderr)
    if not problems: print(f"{len(notebooks)} notebooks read as documents; nothing points outside the repository")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
