"""Fuzzing the X-ray reader. About two thousand damaged variants of the synthetic DICOM files, seeded by one or two
files of every transfer syntax and every damage the synthetic writer produces (bit flips in the header and in the
pixel data, truncations, deleted tags, wrong value lengths, out-of-range values, empty files, garbage), are each read
by `read_xray` in a child process watched by this one: a file on which the child crashes (a decoder's segfault) or
stalls is recorded by name, and a fresh child goes on after it. Every variant must decode to a finite float32 `[H, W]`
image in [0, 1] or raise `XrayReadError` naming the file: no other exception, no hang, no crash. The watcher is tested
on its own with a reader that crashes and hangs. Then the image cache is built over a copy of the dataset in which
some images were replaced by variants: it must finish, list exactly the unreadable ones in rejected.csv with the
reader's reason, and cache the rest. Run with `-s` to see the counts."""
import json, os, re, selectors, shutil, signal, struct, subprocess, sys, time, warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

REPO = Path(__file__).resolve().parents[1]
LIMIT_S = 60                    # seconds a child may go silent on one file before it counts as a hang
STARTUP_S = 300                 # seconds a child may take to import the reader
SEED = 20240611
# variants per seed file, by mutation; delete_tag deletes each tag of the file once, bad_value sets each of BAD_VALUES
MUTATIONS = {"header_bitflip": 20, "pixel_bitflip": 20, "truncate": 20, "delete_tag": None, "wrong_length": 20,
             "bad_value": None, "garbage": 6, "empty": 1}
NUMBERS = ["nan", "inf", "-inf", "1e38", "-1e38", "0", "-1", "1e-38"]
BAD_VALUES = ([{k: v} for k in ("Rows", "Columns") for v in (0, 1, 65535)] + [{"Rows": 65535, "Columns": 65535}]
              + [{"BitsAllocated": v} for v in (0, 1, 7, 8, 32, 64)] + [{"BitsStored": v} for v in (0, 1, 17, 33)]
              + [{"HighBit": v} for v in (0, 31)] + [{"PixelRepresentation": v} for v in (1, 2)]
              + [{"SamplesPerPixel": v} for v in (0, 2, 3)] + [{"NumberOfFrames": v} for v in (0, 2, -1)]
              + [{"PhotometricInterpretation": v} for v in ("", "RGB", "PALETTE COLOR", "YBR_FULL", "MONOCHROME3")]
              + [{k: v} for k in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth") for v in NUMBERS]
              + [{"VOILUTFunction": f, "WindowWidth": w} for f in ("SIGMOID", "LINEAR_EXACT", "BOGUS")
                 for w in (2, 1e38)])
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
PIXEL_DATA, SEQUENCE_END = (0x7FE0, 0x0010), (0xFFFE, 0xE0DD)


# ---------------------------------------------------------------------------------------------------- the child
def read_one(path: str, read, error) -> dict:
    "What `read` makes of `path`: the image's dtype, shape, finiteness and range, or the exception raised."
    try: x = read(path)
    except error as e: return {"outcome": "XrayReadError", "message": str(e), "reason": e.reason, "error_path": e.path}
    except Exception as e: return {"outcome": type(e).__name__, "message": str(e)[:500]}
    finite = bool(np.isfinite(x).all()) if isinstance(x, np.ndarray) else False
    return {"outcome": "ok", "image_dtype": str(getattr(x, "dtype", type(x).__name__)),
            "image_shape": list(np.shape(x)), "finite": finite,
            "range": [float(x.min()), float(x.max())] if finite and x.size else None}


def misbehaving_read(path: str):
    "A stand-in reader for testing the watcher: crashes its process, hangs or decodes, as the file's name says."
    if "segfault" in path: os.kill(os.getpid(), signal.SIGSEGV)
    if "hang" in path: time.sleep(3600)
    return np.zeros((2, 3), np.float32)


def child(list_file: str, start: int, reader: str):
    "The child's loop: a ready line once the reader is imported, then one JSON line per file from line `start` on."
    import faulthandler; faulthandler.enable()            # a crash leaves its Python stack in the stderr file
    if reader == "xray": from expaware_nb.xray import XrayReadError as error, read_xray as read
    else: read, error = misbehaving_read, ValueError
    paths = Path(list_file).read_text().splitlines()
    print(json.dumps({"ready": True}), flush=True)
    for i in range(start, len(paths)):
        t = time.perf_counter()
        answer = read_one(paths[i], read, error)
        print(json.dumps({"i": i, **answer, "seconds": time.perf_counter() - t}), flush=True)


# ---------------------------------------------------------------------------------------------------- the watcher
def start_child(list_file: Path, start: int, reader: str, stderr) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, __file__, "--child", str(list_file), str(start), reader],
                            stdout=subprocess.PIPE, stderr=stderr, env=env, start_new_session=True)


def lost(i: int, outcome: str, message: str) -> dict: return {"i": i, "outcome": outcome, "message": message}


def read_in_child(list_file: Path, start: int, n: int, reader: str, limit: float, stderr) -> list:
    """Outcomes of the files of `list_file` from `start` on, as one child reports them; when the child goes silent on
    a file for `limit` seconds (it is killed: a hang) or dies (a crash), that file is recorded so and the list ends."""
    proc, results, buffer, ready = start_child(list_file, start, reader, stderr), [], b"", False
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            if not selector.select(timeout=limit if ready else STARTUP_S):
                os.killpg(proc.pid, signal.SIGKILL); proc.wait(); proc.stdout.close()
                if not ready: raise RuntimeError(f"the reader child did not start within {STARTUP_S} s")
                return results + [lost(start + len(results), "hang", f"no answer within {limit} s: killed")]
            chunk = os.read(proc.stdout.fileno(), 1 << 16)
            if not chunk: break
            *lines, buffer = (buffer + chunk).split(b"\n")
            answers = [json.loads(line) for line in lines]
            ready = ready or any("ready" in a for a in answers)
            results += [a for a in answers if "ready" not in a]
    rc = proc.wait(); proc.stdout.close()
    if not ready: raise RuntimeError(f"the reader child died before it started, exit code {rc}")
    if start + len(results) < n:
        how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited with code {rc}"
        results.append(lost(start + len(results), "crash", f"the reading process {how}"))
    return results


def read_all(paths: list, folder: Path, reader: str = "xray", limit: float = LIMIT_S) -> list:
    """Outcomes of reading every file of `paths`, one dict each: child after child, each starting after the file that
    ended the last. The children's stderr goes to `folder`/children.stderr."""
    (list_file := folder / "files.txt").write_text("".join(f"{p}\n" for p in paths))
    results = []
    with open(folder / "children.stderr", "w") as stderr:
        while len(results) < len(paths):
            results += read_in_child(list_file, len(results), len(paths), reader, limit, stderr)
    assert [r["i"] for r in results] == list(range(len(paths))), "the children's answers are out of order"
    return [{"path": str(p), **r} for p, r in zip(paths, results)]


# ---------------------------------------------------------------------------------------------------- the variants
def elements(raw: bytes) -> list:
    """The data elements of a little-endian DICOM file as (tag, offset of the length field, its size in bytes, value
    length), read by hand: the meta group in explicit VR, the rest in explicit or implicit VR as the first element
    says; the items of encapsulated pixel data are listed too. Stops at a sequence of undefined length."""
    off = 132 if raw[128:132] == b"DICM" else 0
    found, explicit = [], None
    while off + 8 <= len(raw):
        tag = struct.unpack_from("<HH", raw, off)
        if tag[0] != 2 and explicit is None: explicit = raw[off + 4:off + 6].isalpha()
        if tag[0] == 2 or explicit:
            vr = raw[off + 4:off + 6]
            at, size = (off + 8, 4) if vr in LONG_VRS else (off + 6, 2)
        else: at, size = off + 4, 4
        length = int.from_bytes(raw[at:at + size], "little")
        found.append((tag, at, size, length))
        off = at + size
        if length == 0xFFFFFFFF:
            if tag == PIXEL_DATA: found += items(raw, off)
            break
        off += length
    return found


def items(raw: bytes, off: int) -> list:
    "The items of encapsulated pixel data starting at `off`, as `elements` lists them."
    found = []
    while off + 8 <= len(raw):
        tag, length = struct.unpack_from("<HH", raw, off), struct.unpack_from("<I", raw, off + 4)[0]
        found.append((tag, off + 4, 4, length))
        if tag == SEQUENCE_END: break
        off += 8 + length
    return found


def pixel_start(raw: bytes) -> int | None:
    "Offset of the first byte of the pixel data's value, None without pixel data."
    return next((at + size for tag, at, size, _ in elements(raw) if tag == PIXEL_DATA), None)


def flip_bits(raw: bytes, rng, lo: int, hi: int) -> bytes:
    "`raw` with 1 to 8 random bits flipped in bytes [lo, hi)."
    out = bytearray(raw)
    for at in rng.integers(lo, hi, size=int(rng.integers(1, 9))): out[at] ^= 1 << int(rng.integers(8))
    return bytes(out)


def header_bitflip(raw, rng, k):
    "Bits flipped from the DICM prefix up to the pixel data's value (or the end of a file without pixel data)."
    return flip_bits(raw, rng, 128 if raw[128:132] == b"DICM" else 0, pixel_start(raw) or len(raw))


def pixel_bitflip(raw, rng, k):
    "Bits flipped anywhere in the pixel data, or (every other variant) in its first 64 bytes: a codestream's header."
    start = pixel_start(raw)
    return flip_bits(raw, rng, start, len(raw) if k % 2 else min(start + 64, len(raw)))


def truncate(raw, rng, k):
    "The file cut at a random offset."
    return raw[:int(rng.integers(1, len(raw)))]


def wrong_length(raw, rng, k):
    "One element's length field (items of encapsulated pixel data included) set to a wrong value."
    tag, at, size, length = (found := elements(raw))[int(rng.integers(len(found)))]
    top = (1 << (8 * size)) - 1
    choices = [0, length + 1, max(length - 1, 0), length + 2, 2 * length + 2, top, top - 1, int(rng.integers(top))]
    value = next(v for v in rng.permutation([min(v, top) for v in choices]) if v != length)
    return raw[:at] + int(value).to_bytes(size, "little") + raw[at + size:]


def garbage(raw, rng, k):
    "Random bytes: alone, after a DICOM preamble and prefix, or in place of the pixel data."
    noise = rng.bytes(int(rng.integers(1, 4096)))
    if k % 3 == 0: return noise
    if k % 3 == 1: return bytes(128) + b"DICM" + noise
    start = pixel_start(raw) or len(raw)
    return raw[:start] + rng.bytes(len(raw) - start)


def empty(raw, rng, k): return b""


def tags_of(path: Path) -> list:
    "(in file meta?, tag) of every top-level element of `path`."
    ds = pydicom.dcmread(path, force=True)
    return [(True, t) for t in ds.file_meta.keys()] + [(False, t) for t in ds.keys()]


def save(ds, out: Path) -> bool:
    "Write `ds` to `out` (without a transfer syntax: in its own VR); False when pydicom will not write it."
    own = {} if "TransferSyntaxUID" in ds.file_meta else {"implicit_vr": ds.original_encoding[0], "little_endian": True}
    try: ds.save_as(out, **own)
    except Exception: return False
    return True


def delete_tag(path: Path, meta: bool, tag, out: Path) -> bool:
    "Write `path` less one element to `out`, with pydicom."
    ds = pydicom.dcmread(path, force=True)
    del (ds.file_meta if meta else ds)[tag]
    return save(ds, out)


def set_values(path: Path, values: dict, out: Path) -> bool:
    "Write `path` with the elements `values` {keyword: value} changed to `out`, with pydicom."
    ds = pydicom.dcmread(path, force=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                   # pydicom warns of the invalid values it is asked to set
        for keyword, value in values.items(): setattr(ds, keyword, value)
    return save(ds, out)


BYTE_MUTATIONS = {f.__name__: f for f in (header_bitflip, pixel_bitflip, truncate, wrong_length, garbage, empty)}


def make_variants(seed: Path, name: str, out: Path, rng) -> list:
    "The variants of one seed file, written to `out`: [(path, mutation)]."
    raw, made = seed.read_bytes(), []
    for mutation, count in MUTATIONS.items():
        if mutation == "delete_tag":
            for k, (meta, tag) in enumerate(tags_of(seed)):
                f = out / f"{name}-delete_tag-{k:03d}.dicom"
                if delete_tag(seed, meta, tag, f): made.append((f, mutation))
            continue
        if mutation == "bad_value":
            for k, values in enumerate(BAD_VALUES):
                f = out / f"{name}-bad_value-{k:03d}.dicom"
                if set_values(seed, values, f): made.append((f, mutation))
            continue
        if mutation == "pixel_bitflip" and pixel_start(raw) is None: continue
        for k in range(count):
            f = out / f"{name}-{mutation}-{k:03d}.dicom"
            f.write_bytes(BYTE_MUTATIONS[mutation](raw, rng, k)); made.append((f, mutation))
    return made


def source_files(dataset: Path, out: Path) -> pd.DataFrame:
    """Every file of the dataset and two RLE files written to `out` (an encoding `to_dicom` writes though the dataset
    draws none), with its kind (its transfer syntax, or the damage the synthetic writer gave it), a label, and whether
    it seeds variants: the first two files of each transfer syntax, the first of each damage."""
    from expaware_nb.synth import DAMAGE, save_dicom, synthetic_case, to_dicom
    damage = pd.read_csv(dataset / "ground_truth.csv", dtype={"image_id": str}).groupby("image_id").damage.first()
    files = [(p, damage.get(p.stem) if isinstance(damage.get(p.stem), str)
              else pydicom.dcmread(p).file_meta.TransferSyntaxUID.keyword) for p in sorted(dataset.glob("*/*.dicom"))]
    picture, _ = synthetic_case(np.random.default_rng(1), 60, 52, {"Cardiomegaly": 1})
    for k, bits in enumerate((12, 16)):
        save_dicom(to_dicom(picture, f"rle{k}", encoding="rle", bits=bits, monochrome1=k == 1, rescale=True),
                   out / f"rle{k}.dicom")
        files.append((out / f"rle{k}.dicom", "RLELossless"))
    table = pd.DataFrame(files, columns=["path", "kind"])
    n = table.groupby("kind").cumcount()
    table["label"] = table.kind + "-" + n.astype(str)
    table["seed"] = n < np.where(table.kind.isin(DAMAGE.values()), 1, 2)
    return table


def outcome_class(outcome: pd.Series) -> pd.Series:
    "ok, XrayReadError, hang, crash, or other (any other exception)."
    return outcome.where(outcome.isin(["ok", "XrayReadError", "hang", "crash"]), "other")


def problem(row) -> str | None:
    "What is wrong with the reader's answer to one file, None when nothing is."
    if row.outcome == "XrayReadError":
        named = row.message.startswith(row.path + ": ") and row.error_path == row.path
        return None if named else "XrayReadError not naming its file"
    if row.outcome != "ok": return {"hang": "hang", "crash": "crash"}.get(row.outcome, "other exception")
    dtype, shape, (low, high) = row["image_dtype"], row["image_shape"], row["range"] or (np.nan, np.nan)
    if dtype != "float32" or len(shape) != 2 or min(shape) < 1: return f"not float32 [H, W]: {dtype} {shape}"
    if not row.finite: return "non-finite image"
    return None if 0 <= low <= high <= 1 else f"outside [0, 1]: {low}, {high}"


def print_counts(variants: pd.DataFrame):
    counts = Counter(outcome_class(variants.outcome))
    print(f"\nfuzz: {len(variants)} variants of {variants.seed.nunique()} seed files tried: {counts['ok']} decoded, "
          f"{counts['XrayReadError']} XrayReadError, other={counts['other']}, hangs={counts['hang']}, "
          f"crashes={counts['crash']}; slowest file {variants.seconds.max():.2f} s")
    for by in ("mutation", "kind"):
        print(pd.crosstab(variants[by], outcome_class(variants.outcome), margins=True, margins_name="total"))


# ---------------------------------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from expaware_nb.synth import make_synthetic_dataset
    return make_synthetic_dataset(tmp_path_factory.mktemp("data") / "synth", n_train=42, n_test=6, seed=0,
                                  image_hw=(64, 56), progress=False)         # 42: training images 7, 23 and 41 damaged


@pytest.fixture(scope="module")
def fuzzed(dataset, tmp_path_factory):
    """Every source file (mutation "none") and every variant of the seeds, with what the reader made of it: one row
    per file (path, mutation, seed, kind, outcome, message, reason, ...)."""
    out = tmp_path_factory.mktemp("fuzz")
    sources, rng = source_files(dataset, out), np.random.default_rng(SEED)
    rows = [(p, "none", label, kind) for p, kind, label in sources[["path", "kind", "label"]].itertuples(index=False)]
    for seed in sources[sources.seed].itertuples():
        rows += [(f, mutation, seed.label, seed.kind) for f, mutation in make_variants(seed.path, seed.label, out, rng)]
    results = read_all([p for p, *_ in rows], out)
    return pd.DataFrame([{"mutation": m, "seed": s, "kind": k, **r} for (p, m, s, k), r in zip(rows, results)])


def test_every_variant_decodes_or_raises_xray_read_error(dataset, fuzzed):
    variants = fuzzed[fuzzed.mutation != "none"]
    print_counts(variants)
    assert len(variants) >= 1000
    syntaxes = {pydicom.dcmread(p, force=True).file_meta.get("TransferSyntaxUID") for p in dataset.glob("*/*.dicom")}
    assert {s.keyword for s in syntaxes if s} | {"RLELossless"} <= set(variants.kind), "a transfer syntax not fuzzed"
    assert set(variants.mutation) == set(MUTATIONS)
    problems = variants.assign(problem=variants.apply(problem, axis=1)).dropna(subset=["problem"])
    assert problems.empty, f"{len(problems)} files read wrongly:\n" + problems[["path", "problem", "outcome",
                                                                                   "message"]].to_string()
    for mutation in MUTATIONS:                        # each mutation breaks some files, and the reader survives them
        assert (variants[variants.mutation == mutation].outcome == "XrayReadError").any(), mutation
    originals = fuzzed[fuzzed.mutation == "none"]
    refused = originals.kind == "no_pixel_data"                 # the only damage of the synthetic writer it refuses
    assert (originals.outcome[~refused] == "ok").all() and (originals.outcome[refused] == "XrayReadError").all()


def test_the_watcher_names_a_crash_and_a_hang(tmp_path):
    """The watcher itself, with a stand-in reader that kills its process on one file (SIGSEGV, as a decoder's bad
    memory access would) and sleeps for an hour on another: each is recorded by name, and the files after each are
    read by a fresh child."""
    names = ["a.dicom", "segfault.dicom", "b.dicom", "hang.dicom", "c.dicom"]
    results = read_all([tmp_path / n for n in names], tmp_path, reader="misbehaving", limit=5)
    outcomes = [(Path(r["path"]).name, r["outcome"]) for r in results]
    assert outcomes == list(zip(names, ["ok", "crash", "ok", "hang", "ok"]))
    assert results[1]["message"] == "the reading process killed by SIGSEGV"
    assert "Segmentation fault" in (tmp_path / "children.stderr").read_text()      # faulthandler's report


def replace_some_images(copy: Path, fuzzed: pd.DataFrame) -> tuple:
    """Overwrite images of the dataset `copy` with variants, one of each (mutation, outcome). Returns the images
    replaced, and what reading each file of `copy` gives: {image_id: (outcome, reason)}."""
    originals = fuzzed[fuzzed.mutation == "none"]
    expected = {Path(p).stem: (o, r) for p, o, r in zip(originals.path, originals.outcome, originals.reason)}
    variants = fuzzed[(fuzzed.mutation != "none") & fuzzed.outcome.isin(["ok", "XrayReadError"])]
    chosen = variants.groupby(["mutation", "outcome"]).head(1)
    targets = sorted(p for p in copy.glob("*/*.dicom") if expected[p.stem][0] == "ok")[:len(chosen)]
    assert len(targets) == len(chosen), "too few readable images to replace"
    for target, v in zip(targets, chosen.itertuples()):
        shutil.copyfile(v.path, target)
        reason = v.reason.replace(v.path, str(target)) if v.outcome == "XrayReadError" else None
        expected[target.stem] = (v.outcome, reason)
    return {t.stem for t in targets}, expected


def test_cache_rejects_exactly_the_unreadable_files(dataset, fuzzed, tmp_path):
    """The image cache over a copy of the dataset with images replaced by variants: the build finishes, rejected.csv
    lists exactly the files the reader refuses, each with the reader's reason, and every other image is cached as the
    reader decodes it."""
    from expaware_nb.annotations import read_annotations
    from expaware_nb.cache import build_cache, letterbox
    from expaware_nb.xray import read_xray
    shutil.copytree(dataset, copy := tmp_path / "synth")
    replaced, expected = replace_some_images(copy, fuzzed)
    images = read_annotations(copy).drop_duplicates("image_id")
    unreadable = {i: expected[i][1] for i in images.image_id if expected[i][0] == "XrayReadError"}
    assert len(set(unreadable) & replaced) >= 5 and len(replaced - set(unreadable)) >= 5   # both kinds replaced
    cache = build_cache(images, tmp_path / "cache", size=32, workers=2, progress=False)
    print(f"\ncache over {len(images)} images, {len(replaced)} of them replaced by variants "
          f"({len(set(unreadable) & replaced)} unreadable): {cache.manifest['n_cached']} cached, "
          f"{cache.manifest['n_rejected']} rejected")
    unaddressed = lambda reasons: {i: re.sub(r" at 0x[0-9a-f]+", "", r) for i, r in reasons.items()}
    rejected = dict(zip(cache.rejected.image_id, cache.rejected.reason))
    assert unaddressed(rejected) == unaddressed(unreadable)      # up to the addresses of objects Pillow names
    assert cache.rejected.reason.str.len().min() > 10
    assert sorted(cache.index.image_id) == sorted(set(images.image_id) - set(unreadable))
    n_bad = len(unreadable)
    assert (cache.manifest["n_cached"], cache.manifest["n_rejected"]) == (len(images) - n_bad, n_bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # pydicom's warnings on the damaged files that still decode
        for row in cache.index.itertuples():
            np.testing.assert_array_equal(cache.images[row.row], letterbox(read_xray(row.path), 32)[0], row.path)


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]: child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
