"""Cache-building throughput on full-size chest X-rays.

Writes N uncompressed 12-bit 2,500 x 3,000 DICOM files (half MONOCHROME1, window tags set), then caches
them at 512 px with `expaware_nb.cache.build_cache` (1 and 2 worker processes), and, for contrast, runs a
straightforward recipe on a subset: pydicom's pixel_array, apply_modality_lut and apply_voi_lut in
float64, inversion, min-max, PIL resize, uint8. Reports images/s (median of --repeats builds, each into
an empty cache folder; the DICOM files are in the page cache, as on a second pass over a dataset).

    python bench/cache_build.py [--n 120] [--baseline-n 12] [--repeats 3] [--dir /tmp/expaware-bench-cache]
"""
import argparse, shutil, statistics, time
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from expaware_nb.cache import build_cache
from expaware_nb.synth import synthetic_case, to_dicom

H, W, SIZE = 3000, 2500, 512


def write_dataset(folder: Path, n: int) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        path = folder / f"img{i:04d}.dicom"
        if not path.exists():
            small, _ = synthetic_case(rng, H // 5, W // 5, {"Cardiomegaly": 1})
            big = np.repeat(np.repeat(small, 5, 0), 5, 1) + rng.normal(0, .002, (H, W)).astype(np.float32)
            to_dicom(big, f"img{i:04d}", monochrome1=i % 2 == 1).save_as(path, enforce_file_format=True)
        rows.append({"image_id": f"img{i:04d}", "path": str(path)})
    return pd.DataFrame(rows)


def straightforward(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    x = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float64)
    if ds.PhotometricInterpretation == "MONOCHROME1": x = x.max() - x
    x = (x - x.min()) / (x.max() - x.min())
    scale = SIZE / max(x.shape)
    small = np.asarray(Image.fromarray(x).resize((round(x.shape[1] * scale), round(x.shape[0] * scale)),
                                                 Image.BILINEAR))
    out = np.zeros((SIZE, SIZE), np.uint8)
    out[:small.shape[0], :small.shape[1]] = np.round(np.clip(small, 0, 1) * 255)
    return out


def timed_build(images, root, workers):
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    cache = build_cache(images, root, size=SIZE, workers=workers, progress=False)
    assert cache.manifest["n_cached"] == len(images)
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=120)
    p.add_argument("--baseline-n", type=int, default=12)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", type=Path, default=Path("/tmp/expaware-bench-cache"))
    a = p.parse_args()
    images = write_dataset(a.dir / "dicom", a.n)
    for path in images.path: Path(path).read_bytes()                      # warm the page cache
    print(f"{a.n} uncompressed 12-bit {W}x{H} DICOMs -> {SIZE}px cache")
    t0 = time.perf_counter()
    for path in images.path[:a.baseline_n]: straightforward(Path(path))
    base = a.baseline_n / (time.perf_counter() - t0)
    print(f"straightforward float64 recipe, 1 process: {base:6.1f} images/s ({a.baseline_n} images)")
    for workers in (1, 2):
        rates = [a.n / timed_build(images, a.dir / "cache", workers) for _ in range(a.repeats)]
        med = statistics.median(rates)
        print(f"build_cache, {workers} worker(s):             {med:6.1f} images/s (median of {a.repeats}; "
              f"{med / base:.1f}x the recipe; includes starting the workers)")


if __name__ == "__main__":
    main()
