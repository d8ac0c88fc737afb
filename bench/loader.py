"""Loader throughput from the image cache: XrayDataset + DataLoader at 512 px.

Builds (or reuses) a synthetic dataset and its 512 px cache, then iterates the training split of one
task with a torch DataLoader (batch 32) for several passes, with 0 and 2 worker processes, and reports
images/s (median over passes, after one warm-up pass). Two paths:
  uint8 -- the trainer's: items carry the cached [1, 512, 512] uint8 image; the network input is made on
           the device by to_network_input (timed separately here, on the CPU, for a batch);
  float -- items carry the ready [3, 512, 512] float32 ImageNet-normalised image (12x the bytes).

    python bench/loader.py [--n-train 2000] [--passes 4] [--dir /tmp/expaware-bench-loader]
"""
import argparse, statistics, time
from pathlib import Path

import torch

import numpy as np

from expaware_nb.dataset import XrayDataset, collate, to_network_input
from expaware_nb.cache import build_cache
from expaware_nb.annotations import make_task, read_annotations
from expaware_nb.synth import make_synthetic_dataset


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--passes", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--dir", type=Path, default=Path("/tmp/expaware-bench-loader"))
    a = p.parse_args()
    data = make_synthetic_dataset(a.dir / "synth", n_train=a.n_train, n_test=10, seed=0, normal_fraction=.2,
                                  prevalence={"Lung Opacity": 1.}, progress=False)
    annotations = read_annotations(data)
    cache = build_cache(annotations, a.dir / "cache", size=512, progress=False)
    task = make_task(annotations, "Lung Opacity", val_fraction=0)
    print(f"{(task.images.split == 'train').sum()} training images at 512 px, batch {a.batch}, torch threads "
          f"{torch.get_num_threads()}")
    for uint8 in (True, False):
        dataset = XrayDataset(cache, task, "train", uint8=uint8)
        for workers in (0, 2):
            loader = torch.utils.data.DataLoader(dataset, batch_size=a.batch, shuffle=True, num_workers=workers,
                                                 collate_fn=collate, persistent_workers=workers > 0)
            rates = []
            for i in range(a.passes + 1):
                t0, n = time.perf_counter(), 0
                for images, *_ in loader: n += len(images)
                if i: rates.append(n / (time.perf_counter() - t0))
            print(f"{'uint8' if uint8 else 'float'} items, num_workers={workers}: {statistics.median(rates):7.0f} "
                  f"images/s "
                  f"(median of {a.passes} passes)")
    batch = torch.from_numpy(np.stack([np.array(cache.images[0])[None]] * a.batch))
    times = []
    for _ in range(10):
        t0 = time.perf_counter(); to_network_input(batch); times.append(time.perf_counter() - t0)
    print(f"to_network_input on a uint8 batch of {a.batch}, CPU: {a.batch / statistics.median(times):7.0f} images/s "
          "(on a GPU this is a negligible kernel)")


if __name__ == "__main__":
    main()
