"""Cost of the explanation loss in one training step of DenseNet-121.

Three steps on the same batch (forward, loss, backward, Adam step):
  bce    -- cross-entropy only (the baseline);
  exp    -- cross-entropy + alpha * explanation loss (logit_sqr, alpha=1), Grad-CAM read off the
            features of the same forward pass (expaware_nb.gradcam.grad_cam);
  naive  -- the same loss, but the heatmap computed from a second forward pass (what a post-hoc
            Grad-CAM library bolted onto a training loop does).

Time: the steps are interleaved in one process (bce, exp, naive, bce, ...), after warm-up, and the
median of each is reported with its ratio to bce's median from the same run.
Peak memory: each measurement runs in a fresh process with glibc returning large blocks to the OS
(so RSS follows live tensor memory); after one warm-up step the peak-RSS mark is reset and the peak
of the next steps above the RSS before them is recorded. Processes interleaved, median per variant,
ratio to bce. Linux only (/proc/self/status, clear_refs).

    python bench/step_overhead.py [--size 224] [--batch 4] [--rounds 7] [--mem-rounds 3]
"""
import argparse, json, os, statistics, subprocess, sys, time

import torch

from expaware_nb.model import build_model
from expaware_nb.saliency import boxes_to_mask
from expaware_nb.train import loss_terms

VARIANTS = ("bce", "exp", "naive")


def make_model(seed=0):
    torch.manual_seed(seed)
    return build_model("densenet121", weights=None).train()


def make_batch(size, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=g)
    y = torch.tensor([1, 0] * (batch // 2) + [1] * (batch % 2))
    grid = (size // 32, size // 32)
    masks = torch.stack([boxes_to_mask([[size * .1, size * .2, size * .5, size * .7]], (size, size), grid)] * batch)
    return x, y, masks


def step(variant, net, opt, batch, alpha=1.0):
    "One optimiser step; the loss is the trainer's own `loss_terms` (Eq. 1)."
    x, y, masks = batch
    opt.zero_grad(set_to_none=True)
    if variant == "naive":                                # BCE from one forward pass, the heatmap from another
        bce = loss_terms(net, x, y, masks, "bce", 0.)[0]
        loss = bce + alpha * loss_terms(net, x, y, masks, "logit_sqr", alpha)[3]
    else:
        loss = loss_terms(net, x, y, masks, "bce" if variant == "bce" else "logit_sqr", alpha)[0]
    loss.backward()
    opt.step()
    return loss.item()


def setup(variant, size, batch):
    net = make_model()
    opt = torch.optim.Adam(net.parameters(), lr=2e-4, weight_decay=1e-4)
    return net, opt, make_batch(size, batch)


def time_steps(size, batch, rounds, warmup=2):
    state = {v: setup(v, size, batch) for v in VARIANTS}
    times = {v: [] for v in VARIANTS}
    for r in range(warmup + rounds):
        for v in VARIANTS:
            t0 = time.perf_counter()
            step(v, *state[v])
            if r >= warmup: times[v].append(time.perf_counter() - t0)
    return times


def _status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_memory_child(variant, size, batch, steps=2):
    "Run in a fresh process: peak RSS during `steps` steps above the RSS before them (after one warm-up step)."
    state = setup(variant, size, batch)
    step(variant, *state)                                   # allocates Adam's state, same for every variant
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f: f.write("5")    # reset the peak-RSS high-water mark
    for _ in range(steps): step(variant, *state)
    print(json.dumps({"variant": variant, "peak_above_start": (_status_kib("VmHWM") - before) * 1024}))


# Large blocks go straight to mmap and back to the OS when freed, so RSS follows live tensor memory
# instead of glibc's retained heap (otherwise every variant's RSS creeps up to the same plateau).
CHILD_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def peak_memory(size, batch, rounds):
    peaks = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for v in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--child", v, "--size", str(size), "--batch", str(batch)],
                                 capture_output=True, text=True, check=True, env=CHILD_ENV).stdout
            peaks[v].append(json.loads(out.strip().splitlines()[-1])["peak_above_start"])
    return peaks


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--mem-rounds", type=int, default=3)
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child: return peak_memory_child(a.child, a.size, a.batch)

    print(f"DenseNet-121, {a.size} px, batch {a.batch}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{a.rounds} timed rounds, {a.mem_rounds} memory rounds")
    times = time_steps(a.size, a.batch, a.rounds)
    peaks = peak_memory(a.size, a.batch, a.mem_rounds)
    t_base, m_base = statistics.median(times["bce"]), statistics.median(peaks["bce"])
    print(f"{'variant':8} {'median step (s)':>16} {'time ratio':>11} {'median peak (MiB)':>18} {'memory ratio':>13}")
    for v in VARIANTS:
        t, m = statistics.median(times[v]), statistics.median(peaks[v])
        print(f"{v:8} {t:16.3f} {t / t_base:11.3f} {m / 2**20:18.0f} {m / m_base:13.3f}")


if __name__ == "__main__":
    main()
