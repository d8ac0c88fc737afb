"""What the paper's training costs on one NVIDIA GPU, and whether bf16 and resumption change its results.

Six sections; each has a time cap, and a failure in one is reported (printed and in the JSON) as an error string
while the others still run. The JSON is rewritten (atomically) after every section, so a partial run leaves a
partial report.
  throughput  -- one training step as the trainer takes it (the package's `train_step`: network input made on the
                 device, channels_last, bf16 autocast, Eq. 1's loss, backward, the finiteness check, the optimiser
                 `make_optimizer` builds with `TrainConfig`'s lr and weight decay) of a randomly initialised
                 DenseNet-121 at 512 px, on a batch already on the GPU (labels half positive, one box each): BCE only
                 (formulation bce, alpha 0) and LD-Sqr (logit_sqr, alpha 1), at the paper's batch 12 and at the
                 largest batch that fits (doubled from 12 until CUDA runs out of memory, at most 192), without and
                 with torch.compile of the feature extractor (what the trainer passes as `features_fn` when compile is
                 on; compiled in a child process whose time is capped). BCE and LD-Sqr windows are interleaved after
                 warm-up; images/s is the median over the windows (each between two synchronisations), peak memory
                 torch.cuda.max_memory_allocated (reset per window); ratios LD-Sqr / BCE of time per image (goal
                 <= 1.05) and of peak memory.
  packing     -- 1, 2 and 4 child processes training LD-Sqr at batch 12 (eager, bf16) on the one GPU at once: each
                 warms up and signals it is ready, all start timing at the same moment (a start file), train for a
                 fixed wall time and report their images; aggregate images/s = the sum, with each process's rate and
                 peak memory.
  data_path   -- the trainer's input path: a synthetic dataset's 512 px uint8 cache, XrayDataset and the trainer's
                 loader (`train_loader`: collate, pinned memory on CUDA, persistent workers; each epoch's batches from
                 `epoch_batches`), feeding `train_step` (which copies the batch to the device, non-blocking, and makes
                 the network input there) for LD-Sqr at batch 12, for num_workers 0, 2, 4, 8: images/s of the loader
                 alone, of training fed by it once its workers run, and the GPU-idle share (time spent waiting for the
                 next batch / loop time, each step synchronised); and the same for a run's first epoch on a freshly
                 built loader (trainer_loader_*), the loader's construction and its workers' start-up included.
  projection  -- GPU-hours of the paper's grid: 7 diseases x (1 BCE + 7 guided formulations x 4 alphas) = 203 runs of
                 60 epochs, task sizes from the real VinDr-CXR positive counts (`annotations.VINDR_POSITIVES`, any
                 radiologist) split as `make_task` splits PhysioNet's release (`split_counts`). Per run: epochs x train
                 images / training images/s (the faster of compile off/on; BCE runs at BCE's rate, guided runs at
                 LD-Sqr's) + epochs x val images / validation images/s + test images / test images/s, the last two
                 measured with the package's `evaluate` (validation: heatmaps and the history's metrics,
                 `VALIDATION_METRICS`, as the trainer validates; test: every metric, with the MPRT copies). For one run per
                 GPU, and divided by the best packing's speed-up; at the paper's batch and at the largest batch.
  heatmaps    -- after a few LD-Sqr steps on the synthetic data, the evaluation heatmaps (`evaluation_heatmaps`:
                 Grad-CAM of z1 - z0, normalised) of one batch of positives with boxes under bf16 autocast vs fp32
                 (TF32 off), same weights, same batch: max |difference| of the maps and, from `image_metrics`, of
                 top-saliency precision, all-saliency precision and annotation coverage (covered / boxes) per image.
  resume      -- `train_run` of a small synthetic run (child processes): uninterrupted, and killed (SIGKILL) once
                 half its epochs are done then started again; history, final weights and test metrics compared
                 (bit-identical, within tolerance, or not), with the determinism flags the runs had. On CUDA an
                 uninterrupted repeat gives the run-to-run noise to compare against.

Every hyper-parameter the benchmark does not vary (dropout, optimiser, loss mode, k, tau, scores, amp) is
`TrainConfig`'s default.

--dry-run runs every code path on the CPU with the tiny DenseNet at 64 px (batches 2 and 4, 2 steps a window,
compile with the aot_eager backend at one batch, packing 1 and 2 processes, num_workers 0 and 2) in about a minute;
there "peak memory" is the process's peak RSS, and bf16 autocast is on only where the trainer turns it on (CUDA), except
in the heatmaps section, which compares bf16 with fp32 on whatever device it runs. With --device cuda it is a quick
check on a GPU that every path works there.

    python bench/gpu.py [--json PATH] [--device cuda] [--dry-run] [--dir /tmp/expaware-bench-gpu] [--budget S]
"""
import argparse, contextlib, gc, importlib.util, json, logging, os, platform, shutil, signal, statistics, subprocess
import itertools, sys, tempfile, time, traceback
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torchvision

from expaware_nb.annotations import (PAPER_DISEASES, VINDR_IMAGES, VINDR_POSITIVES, make_task, read_annotations,
                                     split_counts)
from expaware_nb.attribution import RANDOMISED_PARTS, randomised_copy
from expaware_nb.cache import build_cache
from expaware_nb.dataset import XrayDataset, boxes_masks, collate, to_network_input
from expaware_nb.evaluation import evaluate, evaluation_heatmaps, image_metrics
from expaware_nb.model import build_model, feature_map_size
from expaware_nb.runs import CHECKPOINT_FILE, HISTORY_FILE, TEST_METRICS_FILE, read_history, read_json
from expaware_nb.runs import write_json as write_json_atomically
from expaware_nb.synth import make_synthetic_dataset
from expaware_nb.profiles import expand, load_profile
from expaware_nb.train import VALIDATION_METRICS, TrainConfig, epoch_batches, make_optimizer, train_loader, train_step

REPO = Path(__file__).resolve().parents[1]
RESULT = "BENCH-RESULT "                                  # prefix of the JSON lines a child process reports
LOSSES = {"bce": ("bce", 0.), "ld_sqr": ("logit_sqr", 1.)}  # name -> (formulation, alpha)


def paper_grid() -> dict:
    "Epochs and runs per disease of the paper's grid, as the sweep expands `configs/paper.yaml` (profile `paper`)."
    configs = [c.config for c in expand(load_profile("paper"))]
    diseases = {c.disease for c in configs}
    guided = sum(c.formulation != "bce" for c in configs) // len(diseases)
    return {"epochs": configs[0].epochs, "runs_per_disease": {"bce": (len(configs) // len(diseases)) - guided,
                                                             "guided": guided}}


PAPER_GRID = paper_grid()


@dataclass(frozen=True)
class Setting:
    "What one mode (the GPU run or the dry run) measures, and how long each section may take."
    arch: str
    size: int
    paper_batch: int
    max_batch: int
    warmup: int
    windows: int
    window_s: float
    steps: tuple                    # (min, max) steps per timed window
    compile_backend: str
    compile_largest: bool           # compile at the largest batch too
    packing: tuple                  # process counts, the single process first (the baseline)
    packing_s: float
    workers: tuple
    n_train: int
    passes: int
    heatmap_steps: int
    compare_batch: int
    eval_batches: int
    resume: dict
    caps: dict = field(default_factory=dict)
    budget_s: float = 465.


GPU_SETTING = Setting(
    arch="densenet121", size=512, paper_batch=12, max_batch=192, warmup=3, windows=5, window_s=.8, steps=(2, 60),
    compile_backend="inductor", compile_largest=True, packing=(1, 4, 2), packing_s=6., workers=(0, 2, 4, 8),
    n_train=400, passes=2, heatmap_steps=20, compare_batch=12, eval_batches=8,
    resume=dict(arch="densenet121", image_size=256, n_train=120, n_test=30, epochs=4, batch_size=12),
    caps=dict(throughput=45, compile=140, packing=80, data_path=55, projection=30, heatmaps=20, resume=70))
DRY_SETTING = Setting(
    arch="densenet_tiny", size=64, paper_batch=2, max_batch=4, warmup=1, windows=2, window_s=0., steps=(2, 3),
    compile_backend="aot_eager", compile_largest=False, packing=(1, 2), packing_s=1., workers=(0, 2),
    n_train=20, passes=1, heatmap_steps=2, compare_batch=4, eval_batches=2,
    resume=dict(arch="densenet_tiny", image_size=64, n_train=120, n_test=30, epochs=4, batch_size=4),
    caps=dict(throughput=60, compile=90, packing=90, data_path=60, projection=60, heatmaps=60, resume=120),
    budget_s=400.)


@dataclass
class Context:
    setting: Setting
    device: torch.device
    root: Path
    report: dict
    dry_run: bool


def log(message: str = ""):
    print(message, flush=True)


# ---------------------------------------------------------------- devices, memory, timing

def sync(device):
    if device.type == "cuda": torch.cuda.synchronize(device)


def _status_kib(name: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(name + ":"))


def reset_peak_memory(device):
    "Start a new peak: CUDA's allocator statistics, or (CPU) the process's peak-RSS mark."
    if device.type == "cuda": return torch.cuda.reset_peak_memory_stats(device)
    with contextlib.suppress(OSError):
        with open("/proc/self/clear_refs", "w") as f: f.write("5")


def peak_memory(device) -> int:
    "Bytes: CUDA's max_memory_allocated since the reset, or (CPU) the process's peak RSS."
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _status_kib("VmHWM") * 1024


def free_memory():
    gc.collect()
    if torch.cuda.is_available(): torch.cuda.empty_cache()


def is_out_of_memory(error: Exception) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def short(error: Exception, limit: int = 300) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= limit else text[:limit] + " ..."


def environment(device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
            "device": str(device), "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "torch_threads": torch.get_num_threads(), "triton": importlib.util.find_spec("triton") is not None,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_bytes=props.total_memory, capability=f"{props.major}.{props.minor}")
    return info


# ---------------------------------------------------------------- the training step

def step_config(setting: Setting, loss: str, batch: int, device, workers: int = 0) -> TrainConfig:
    "The trainer's defaults with what the benchmark varies: architecture, size, batch, loss, device, loader workers."
    formulation, alpha = LOSSES[loss]
    return replace(TrainConfig(), arch=setting.arch, image_size=setting.size, batch_size=batch, formulation=formulation,
                   alpha=alpha, weights=None, device=str(device), num_workers=workers)


def training_model(config: TrainConfig, device, seed: int = 0) -> tuple:
    "A randomly initialised model (channels_last on CUDA, as the trainer's) in training mode, and its optimiser."
    torch.manual_seed(seed)
    model = build_model(config.arch, weights=None, dropout=config.dropout).to(device)
    if device.type == "cuda": model = model.to(memory_format=torch.channels_last)
    return model.train(), make_optimizer(model, config)


def synthetic_batch(setting: Setting, batch: int, device) -> tuple:
    "A collated batch already on the device: uint8 grey images, labels half positive, one box (and its mask) each."
    size, g = setting.size, torch.Generator().manual_seed(batch)
    images = torch.randint(0, 256, (batch, 1, size, size), dtype=torch.uint8, generator=g)
    labels = torch.tensor([1, 0] * (batch // 2) + [1] * (batch % 2))
    boxes = [torch.tensor([[size * .1, size * .2, size * .5, size * .7]])] * batch
    masks = boxes_masks(boxes, (size, size), feature_map_size(setting.arch, size))
    return images.to(device), labels.to(device), masks.to(device), boxes, [f"synthetic-{i}" for i in range(batch)]


def timed_steps(step, n: int, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n): step()
    sync(device)
    return time.perf_counter() - t0


def measure_losses(model, optimizer, batch: tuple, setting: Setting, deadline: float, features_fn=None) -> dict:
    "Warm up, then interleaved BCE and LD-Sqr windows: median images/s, peak memory, and the LD-Sqr / BCE ratios."
    device, n_images = batch[0].device, len(batch[0])
    configs = {loss: step_config(setting, loss, n_images, device) for loss in LOSSES}
    steps = {loss: (lambda c=c: train_step(model, optimizer, batch, c, device, features_fn)) for loss, c in configs.items()}
    warmup_s = {loss: timed_steps(step, setting.warmup, device) for loss, step in steps.items()}
    per_step = max(timed_steps(step, 1, device) for step in steps.values())
    n = int(min(max(round(setting.window_s / per_step), setting.steps[0]), setting.steps[1]))
    rates, peaks = {loss: [] for loss in LOSSES}, {loss: 0 for loss in LOSSES}
    for w in range(setting.windows):
        if w and time.time() > deadline: break
        for loss, step in steps.items():
            reset_peak_memory(device)
            rates[loss].append(n * n_images / timed_steps(step, n, device))
            peaks[loss] = max(peaks[loss], peak_memory(device))
    out = {"warmup_s": warmup_s, "steps_per_window": n, "windows": len(rates["bce"])}
    for loss in LOSSES:
        out[loss] = {"images_per_s": statistics.median(rates[loss]), "window_images_per_s": rates[loss],
                     "peak_memory_bytes": peaks[loss]}
    out["time_ratio"] = out["bce"]["images_per_s"] / out["ld_sqr"]["images_per_s"]     # time per image, LD-Sqr / BCE
    out["memory_ratio"] = out["ld_sqr"]["peak_memory_bytes"] / out["bce"]["peak_memory_bytes"]
    return out


def print_measurement(record: dict):
    if record.get("error"):
        return log(f"  batch {record['batch']:>3}, compile {'on ' if record['compile'] else 'off'}: {record['error']}")
    b, s = record["bce"], record["ld_sqr"]
    log(f"  batch {record['batch']:>3}, compile {'on ' if record['compile'] else 'off'}: BCE {b['images_per_s']:8.1f} "
        f"img/s {b['peak_memory_bytes'] / 2**30:6.2f} GiB | LD-Sqr {s['images_per_s']:8.1f} img/s "
        f"{s['peak_memory_bytes'] / 2**30:6.2f} GiB | time ratio {record['time_ratio']:.3f}, memory ratio "
        f"{record['memory_ratio']:.3f} ({record['windows']} windows of {record['steps_per_window']} steps)")


# ---------------------------------------------------------------- child processes

def child_env(processes: int = 1) -> dict:
    "The environment of a child: this checkout importable, one share of the CPU threads unless OMP_NUM_THREADS is set."
    env = dict(os.environ, TQDM_DISABLE="1")
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def kill_group(proc):
    with contextlib.suppress(ProcessLookupError): os.killpg(proc.pid, signal.SIGKILL)


def run_child(argv: list, timeout: float, env: dict, capture_stderr: bool = False) -> tuple:
    "Run a child in its own session (killed with its whole group on timeout): (returncode, stdout, stderr, timed out)."
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE if capture_stderr else None,
                            text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=max(timeout, 1))
        return proc.returncode, out, err or "", False
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        return proc.returncode, out, err or "", True


def child_results(stdout: str) -> list:
    return [json.loads(line[len(RESULT):]) for line in (stdout or "").splitlines() if line.startswith(RESULT)]


def report_result(obj: dict):
    print(RESULT + json.dumps(obj), flush=True)


def worker_argv(args, mode: str, *extra) -> list:
    dry = ["--dry-run"] if args.dry_run else []
    return [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--device", args.device, *dry, *extra]


# ---------------------------------------------------------------- 1. throughput

def fits(model, optimizer, setting: Setting, batch: int, device) -> tuple:
    "Whether two LD-Sqr steps at `batch` run without running out of memory: (fits, error)."
    try:
        data, config = synthetic_batch(setting, batch, device), step_config(setting, "ld_sqr", batch, device)
        for _ in range(2): train_step(model, optimizer, data, config, device)
        sync(device)
        return True, None
    except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
        if not is_out_of_memory(e): raise
        error = short(e, 160)
    data = None
    optimizer.zero_grad(set_to_none=True)
    free_memory()
    return False, error


def largest_batch(model, optimizer, setting: Setting, device, deadline: float) -> tuple:
    "Double the batch from the paper's until a step runs out of memory (or the cap): (largest that fit, tries)."
    tries, batch, largest = [], setting.paper_batch, None
    while batch <= setting.max_batch and (largest is None or time.time() < deadline):
        ok, error = fits(model, optimizer, setting, batch, device)
        tries.append({"batch": batch, "fits": ok, "error": error})
        log(f"  batch {batch:>3}: {'fits' if ok else error}")
        if not ok: break
        largest, batch = batch, batch * 2
    if largest is None: raise RuntimeError(f"the paper's batch {setting.paper_batch} does not fit: {tries[0]['error']}")
    return largest, tries


def measure_batch(model, optimizer, setting: Setting, batch: int, device, deadline: float, features_fn=None) -> dict:
    record = {"batch": batch, "compile": features_fn is not None, "error": None}
    try:
        data = synthetic_batch(setting, batch, device)
        record.update(measure_losses(model, optimizer, data, setting, deadline, features_fn))
    except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
        if not is_out_of_memory(e): raise
        record["error"] = short(e)
    data = None
    free_memory()
    return record


def throughput_section(ctx: Context, out: dict, deadline: float, args):
    s, device = ctx.setting, ctx.device
    deadline = min(deadline, time.time() + s.caps["throughput"])          # the rest is the compile child's
    model, optimizer = training_model(step_config(s, "ld_sqr", s.paper_batch, device), device)
    log(f"largest batch (LD-Sqr steps, doubling from {s.paper_batch}, at most {s.max_batch}):")
    largest, tries = largest_batch(model, optimizer, s, device, deadline)
    out.update(batch_search=tries, batches={"paper": s.paper_batch, "largest": largest}, measurements=[])
    log("eager (compile off):")
    for batch in dict.fromkeys((s.paper_batch, largest)):
        if time.time() > deadline and out["measurements"]:
            out["measurements"].append({"batch": batch, "compile": False, "error": "skipped: section time cap"})
        else: out["measurements"].append(measure_batch(model, optimizer, s, batch, device, deadline))
        print_measurement(out["measurements"][-1])
    model = optimizer = None
    free_memory()
    out["compile"] = compiled_measurements(ctx, out, largest, args)


def compiled_measurements(ctx: Context, out: dict, largest: int, args) -> dict:
    "Compile on, in a child process (a stuck or crashing compile cannot take this process down); its time capped."
    s = ctx.setting
    batches = [s.paper_batch] + ([largest] if s.compile_largest and largest != s.paper_batch else [])
    cap = min(s.caps["compile"], ctx.report["_budget_end"] - time.time())
    log(f"torch.compile(model.features), backend {s.compile_backend}, batches {batches}, cap {cap:.0f} s:")
    t0 = time.time()
    argv = worker_argv(args, "compile", "--batches", ",".join(map(str, batches)), "--seconds", f"{cap:.0f}")
    code, stdout, _, timed_out = run_child(argv, cap, child_env())
    results = {r["batch"]: r for r in child_results(stdout)}
    for batch in batches:
        record = results.get(batch) or {"batch": batch, "compile": True,
                                        "error": "timed out (compile cap)" if timed_out else f"child exit {code}"}
        out["measurements"].append(record)
        print_measurement(record)
    return {"backend": s.compile_backend, "seconds": time.time() - t0, "cap_s": cap, "timed_out": timed_out,
            "returncode": code}


def compile_worker(args):
    "Child: per batch, torch.compile the feature extractor afresh and measure; one result line per batch."
    s, device = setting_of(args), torch.device(args.device)
    deadline = time.time() + args.seconds - 5
    model, optimizer = training_model(step_config(s, "ld_sqr", s.paper_batch, device), device)
    for batch in map(int, args.batches.split(",")):
        torch._dynamo.reset()                      # a static compile per batch, as a run at that batch gets
        features_fn = torch.compile(model.features, backend=s.compile_backend)
        t0 = time.time()
        try:
            record = measure_batch(model, optimizer, s, batch, device, deadline, features_fn)
        except Exception as e:
            traceback.print_exc()
            record = {"batch": batch, "compile": True, "error": short(e)}
        record["compile_and_measure_s"] = time.time() - t0      # the first (BCE) warm-up steps hold the compile
        report_result(record)


# ---------------------------------------------------------------- 2. packing

def packing_worker(args):
    "Child: warm up, say ready, wait for the common start, train LD-Sqr steps for the wall time, report its images."
    s, device = setting_of(args), torch.device(args.device)
    barrier = Path(args.barrier)
    config = step_config(s, "ld_sqr", s.paper_batch, device)
    model, optimizer = training_model(config, device, seed=args.rank)
    data = synthetic_batch(s, s.paper_batch, device)
    for _ in range(s.warmup): train_step(model, optimizer, data, config, device)
    sync(device)
    reset_peak_memory(device)
    (barrier / f"ready-{args.rank}").touch()
    go, give_up = barrier / "go", time.time() + 300
    while not go.exists():
        if time.time() > give_up: raise TimeoutError("no start signal")
        time.sleep(.005)
    start = float(go.read_text())
    while time.time() < start: time.sleep(.001)
    images, end = 0, start
    while end - start < args.seconds:
        train_step(model, optimizer, data, config, device)
        sync(device)
        images, end = images + s.paper_batch, time.time()
    reserved = torch.cuda.max_memory_reserved(device) if device.type == "cuda" else None
    report_result({"rank": args.rank, "images": images, "seconds": end - start, "images_per_s": images / (end - start),
                   "start": start, "end": end, "peak_memory_bytes": peak_memory(device),
                   "peak_reserved_bytes": reserved})


def packing_round(ctx: Context, n: int, args, deadline: float) -> dict:
    "n workers at once: wait until all are warm, give them one start time, collect their reports."
    s = ctx.setting
    with tempfile.TemporaryDirectory(prefix="gpu-bench-barrier-") as barrier:
        argv = worker_argv(args, "packing", "--barrier", barrier, "--seconds", str(s.packing_s))
        procs = [subprocess.Popen(argv + ["--rank", str(i)], stdout=subprocess.PIPE, text=True,
                                  env=child_env(n), start_new_session=True) for i in range(n)]
        try:
            ready = [Path(barrier) / f"ready-{i}" for i in range(n)]
            while not all(p.exists() for p in ready):
                if any(p.poll() is not None for p in procs): raise RuntimeError("a packing worker exited before ready")
                if time.time() > deadline: raise TimeoutError("packing workers not ready within the section cap")
                time.sleep(.02)
            go = Path(barrier) / "go"
            go.with_name("go.tmp").write_text(repr(time.time() + .5))
            os.replace(go.with_name("go.tmp"), go)
            outputs = [p.communicate(timeout=max(deadline - time.time(), 1))[0] for p in procs]
        finally:
            for p in procs:
                if p.poll() is None: kill_group(p)
    results = [r for o in outputs for r in child_results(o)]
    if len(results) != n: raise RuntimeError(f"{len(results)} of {n} packing workers reported")
    return {"processes": n, "aggregate_images_per_s": sum(r["images_per_s"] for r in results),
            "per_process_images_per_s": [r["images_per_s"] for r in results],
            "peak_memory_bytes": [r["peak_memory_bytes"] for r in results],
            "peak_reserved_bytes": [r["peak_reserved_bytes"] for r in results],
            "overlap_s": min(r["end"] for r in results) - max(r["start"] for r in results)}


def packing_section(ctx: Context, out: dict, deadline: float, args):
    s = ctx.setting
    out.update(batch=s.paper_batch, loss="ld_sqr", compile=False, seconds_timed=s.packing_s, rounds=[])
    for n in s.packing:
        result = packing_round(ctx, n, args, deadline)
        out["rounds"].append(result)
        mem = ", ".join(f"{b / 2**30:.2f}" for b in result["peak_memory_bytes"])
        log(f"  {n} process(es): aggregate {result['aggregate_images_per_s']:8.1f} img/s, per process "
            f"{', '.join(f'{r:.1f}' for r in result['per_process_images_per_s'])}; peak GiB {mem}")
    out["rounds"].sort(key=lambda r: r["processes"])
    single = out["rounds"][0]["aggregate_images_per_s"]
    for r in out["rounds"]: r["speedup_vs_1"] = r["aggregate_images_per_s"] / single
    best = max(out["rounds"], key=lambda r: r["aggregate_images_per_s"])
    out["best"] = {"processes": best["processes"], "speedup_vs_1": best["speedup_vs_1"]}


# ---------------------------------------------------------------- 3. data path

def synthetic_split(ctx: Context) -> tuple:
    "The training split of a synthetic Lung Opacity task, from its uint8 cache at the benchmark's size (made once)."
    s = ctx.setting
    t0 = time.perf_counter()
    data = make_synthetic_dataset(ctx.root / f"synthetic-{s.n_train}", n_train=s.n_train,
                                  n_test=max(4, s.n_train // 10), seed=0, normal_fraction=.2,
                                  prevalence={"Lung Opacity": 1.}, progress=False)
    t1 = time.perf_counter()
    annotations = read_annotations(data)
    cache = build_cache(annotations, ctx.root / "cache", size=s.size, progress=False)
    t2 = time.perf_counter()
    task = make_task(annotations, "Lung Opacity", val_fraction=0)
    dataset = XrayDataset(cache, task, "train", heatmap_hw=feature_map_size(s.arch, s.size), uint8=True)
    return dataset, {"generate_s": t1 - t0, "cache_s": t2 - t1}


def loader_pass(make_batches) -> float:
    "Images/s of drawing the batches of `make_batches()` (called inside the timing), with no training."
    t0, n = time.perf_counter(), 0
    for images, *_ in make_batches(): n += len(images)
    return n / (time.perf_counter() - t0)


def fed_pass(model, optimizer, make_batches, config: TrainConfig, device, epoch: int) -> tuple:
    """One epoch of `train_step`s fed by `make_batches()`: (images/s, share of the loop spent waiting for a batch).
    Making the batches' iterable (a loader's construction, its workers' start) counts as waiting."""
    sync(device)
    t0 = time.perf_counter()
    batches = iter(make_batches())
    waited, n = time.perf_counter() - t0, 0
    for index in itertools.count(1):
        t = time.perf_counter()
        item = next(batches, None)
        waited += time.perf_counter() - t
        if item is None: break
        train_step(model, optimizer, item, config, device, epoch=epoch, index=index)
        sync(device)                                 # the step is done: the wait for the next batch is GPU idle time
        n += len(item[1])
    total = time.perf_counter() - t0
    return n / total, waited / total


def data_path_row(model, optimizer, dataset, workers: int, ctx: Context) -> dict:
    """With `workers` loader workers: the trainer's loader alone and feeding training, its workers already running
    (the epochs after a run's first), then a run's first epoch on a freshly built loader (trainer_loader_*)."""
    s, device = ctx.setting, ctx.device
    config = step_config(s, "ld_sqr", s.paper_batch, device, workers)
    loader = train_loader(dataset, config, device)
    loader_pass(partial(epoch_batches, loader, 1))                            # starts the persistent workers
    loader_rates = [loader_pass(partial(epoch_batches, loader, e)) for e in range(2, 2 + s.passes)]
    fed = [fed_pass(model, optimizer, partial(epoch_batches, loader, e), config, device, e)
           for e in range(2 + s.passes, 2 + 2 * s.passes)]
    del loader                                                                # its workers stop
    first = [fed_pass(model, optimizer, lambda: epoch_batches(train_loader(dataset, config, device), 1), config, device,
                      1) for _ in range(s.passes)]
    return {"num_workers": workers, "loader_images_per_s": statistics.median(loader_rates),
            "train_images_per_s": statistics.median(r for r, _ in fed),
            "gpu_idle_share": statistics.median(w for _, w in fed),
            "trainer_loader_train_images_per_s": statistics.median(r for r, _ in first),
            "trainer_loader_gpu_idle_share": statistics.median(w for _, w in first)}


def data_path_section(ctx: Context, out: dict, deadline: float, args):
    s, device = ctx.setting, ctx.device
    dataset, timings = synthetic_split(ctx)
    out.update(timings, images=len(dataset), batch=s.paper_batch, size=s.size, rows=[])
    log(f"  synthetic dataset: {s.n_train} training images generated in {timings['generate_s']:.1f} s, cached at "
        f"{s.size} px in {timings['cache_s']:.1f} s; {len(dataset)} in the training split")
    config = step_config(s, "ld_sqr", s.paper_batch, device)
    model, optimizer = training_model(config, device)
    for _ in range(s.warmup): train_step(model, optimizer, synthetic_batch(s, s.paper_batch, device), config, device)
    for workers in s.workers:
        if time.time() > deadline and out["rows"]:
            out["skipped_workers"] = [w for w in s.workers if w >= workers]
            break
        row = data_path_row(model, optimizer, dataset, workers, ctx)
        out["rows"].append(row)
        log(f"  num_workers {workers}: loader {row['loader_images_per_s']:8.1f} img/s; training fed by it "
            f"{row['train_images_per_s']:7.1f} img/s, GPU idle {row['gpu_idle_share']:.1%}; a run's first epoch "
            f"{row['trainer_loader_train_images_per_s']:7.1f} img/s, idle {row['trainer_loader_gpu_idle_share']:.1%}")


# ---------------------------------------------------------------- 4. projection

def paper_task_sizes(val_fraction: float) -> dict:
    """Images per split of each paper task on PhysioNet's VinDr-CXR, as `make_task` splits it: `val_fraction` of the
    training release's positives (and of its negatives) to validation, the rest to training, negatives balanced to
    the positives in each split; the official test split kept. The test positives per task are not in this
    repository: estimated as the training positives x 3,000 / 15,000 (the test split's share of images)."""
    sizes = {}
    for disease in PAPER_DISEASES:
        positives = VINDR_POSITIVES[1][disease]
        val = split_counts(positives, val_fraction)["val"]
        test = round(positives * VINDR_IMAGES["test"] / VINDR_IMAGES["train"])
        sizes[disease] = {"positives": positives, "train": 2 * (positives - val), "val": 2 * val, "test": 2 * test}
    return sizes


def projected_hours(task_sizes: dict, epochs: int, runs_per_disease: dict, train_rates: dict, val_rate: float,
                    test_rates: dict) -> float:
    "GPU-hours of the grid, one run per GPU: the sum over runs of training, validation and test time."
    seconds = 0.
    for sizes in task_sizes.values():
        for kind, runs in runs_per_disease.items():
            seconds += runs * (epochs * sizes["train"] / train_rates[kind] + epochs * sizes["val"] / val_rate
                               + sizes["test"] / test_rates[kind])
    return seconds / 3600


def eval_batches(dataset, config: TrainConfig, device, n_batches: int) -> list:
    "The first `n_batches` of the trainer's loader, drawn before any timing."
    return list(itertools.islice(epoch_batches(train_loader(dataset, config, device), 1), n_batches))


def timed_rate(fn, n_images: int, device) -> float:
    "Images/s of `fn` (one warm-up call first)."
    fn()
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return n_images / (time.perf_counter() - t0)


def evaluation_rates(ctx: Context, batch: int) -> dict:
    "Images/s of the trainer's validation and test passes (its `evaluate`), and of the bare forward passes."
    s, device = ctx.setting, ctx.device
    c = step_config(s, "ld_sqr", batch, device)
    amp = c.amp and device.type == "cuda"
    model, _ = training_model(c, device)
    batches = eval_batches(synthetic_split(ctx)[0], c, device, s.eval_batches)
    n = sum(len(b[0]) for b in batches)
    randomised = {part: randomised_copy(model, part) for part in RANDOMISED_PARTS}
    scores = {"bce": {"common": c.eval_score}, "guided": {"common": c.eval_score, "own": c.formulation}}
    val = timed_rate(lambda: evaluate(model, batches, device, {"val": c.eval_score}, c.k, c.tau, amp,
                                          metrics=VALIDATION_METRICS), n, device)
    test = {kind: timed_rate(lambda sc=sc: evaluate(model, batches, device, sc, c.k, c.tau, amp, randomised=randomised),
                             n, device) for kind, sc in scores.items()}
    inputs = [to_network_input(b[0].to(device)) for b in batches]

    def forward_only():
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            for x in inputs: model(x)

    def forward_gradcam():
        for x in inputs: evaluation_heatmaps(model, x, {"common": c.eval_score}, amp)

    model.eval()
    return {"batch": batch, "images": n, "val": val, "test": test, "forward_only": timed_rate(forward_only, n, device),
            "forward_gradcam": timed_rate(forward_gradcam, n, device)}


def best_training_rates(measurements: list, batch: int) -> tuple:
    "Per kind of run, the faster of compile off/on at `batch`: ({kind: images/s}, {kind: 'eager' or 'compile'})."
    rates, settings = {}, {}
    for m in measurements:
        if m["batch"] != batch or m.get("error"): continue
        for kind, loss in (("bce", "bce"), ("guided", "ld_sqr")):
            rate = m[loss]["images_per_s"]
            if rate > rates.get(kind, 0): rates[kind], settings[kind] = rate, "compile" if m["compile"] else "eager"
    if set(rates) != {"bce", "guided"}: raise RuntimeError(f"no training throughput measured at batch {batch}")
    return rates, settings


def projection_section(ctx: Context, out: dict, deadline: float, args):
    s, report = ctx.setting, ctx.report
    throughput = report.get("throughput", {})
    if not throughput.get("measurements"): raise RuntimeError("the throughput section measured nothing")
    packing = report.get("packing", {}).get("best")
    sizes = paper_task_sizes(TrainConfig().val_fraction)
    out.update(PAPER_GRID, n_runs=len(sizes) * sum(PAPER_GRID["runs_per_disease"].values()), task_sizes=sizes,
               task_sizes_note="PhysioNet layout (the paper profile's data): train/val from the 15,000 training "
                               "images (val_fraction of each label), negatives balanced; test positives estimated "
                               "as training positives x 3000/15000",
               not_included="data loading (see data_path), checkpoint writes, process start-up, the MPRT copies' "
                            "deep copy, compile time",
               packing=packing, scenarios=[])
    rates = out["evaluation_rates"] = evaluation_rates(ctx, s.paper_batch)
    log(f"  evaluation at batch {s.paper_batch}: validation {rates['val']:.1f} img/s, test (MPRT included) BCE "
        f"{rates['test']['bce']:.1f} / guided {rates['test']['guided']:.1f} img/s; bare forward "
        f"{rates['forward_only']:.1f}, forward + Grad-CAM {rates['forward_gradcam']:.1f} img/s")
    for name, batch in (("paper batch", s.paper_batch), ("largest batch", throughput["batches"]["largest"])):
        try: train_rates, settings = best_training_rates(throughput["measurements"], batch)
        except RuntimeError as e:
            out["scenarios"].append({"name": name, "batch": batch, "error": str(e)})
            continue
        inputs = {"epochs": PAPER_GRID["epochs"], "runs_per_disease": PAPER_GRID["runs_per_disease"],
                  "train_rates": train_rates, "val_rate": rates["val"], "test_rates": rates["test"]}
        hours = projected_hours(sizes, **inputs)
        scenario = {"name": name, "batch": batch, "eval_batch": s.paper_batch, **inputs, "train_settings": settings,
                    "gpu_hours": hours,
                    "packing_speedup": packing["speedup_vs_1"] if packing else None,
                    "gpu_hours_packed": hours / packing["speedup_vs_1"] if packing else None}
        out["scenarios"].append(scenario)
    print_projection(out)


def print_projection(out: dict):
    log(f"  grid: {out['n_runs']} runs = {len(out['task_sizes'])} diseases x (1 BCE + "
        f"{out['runs_per_disease']['guided']} guided), {out['epochs']} epochs")
    log("  GPU-hours = sum over runs of (epochs x train / train rate + epochs x val / val rate + test / test rate)"
        " / 3600")
    log("  " + "; ".join(f"{d} {v['train']}/{v['val']}/{v['test']}" for d, v in out["task_sizes"].items())
        + " (train/val/test images)")
    for sc in out["scenarios"]:
        if sc.get("error"):
            log(f"  {sc['name']} ({sc['batch']}): {sc['error']}")
            continue
        packed = (f"; {sc['gpu_hours_packed']:.0f} GPU-hours packed {out['packing']['processes']} per GPU "
                  f"(x{sc['packing_speedup']:.2f})" if sc["gpu_hours_packed"] else "")
        log(f"  {sc['name']} {sc['batch']}: train BCE {sc['train_rates']['bce']:.1f} img/s "
            f"({sc['train_settings']['bce']}), guided {sc['train_rates']['guided']:.1f} img/s "
            f"({sc['train_settings']['guided']}) -> {sc['gpu_hours']:.0f} GPU-hours one run per GPU{packed}")


# ---------------------------------------------------------------- 5a. bf16 vs fp32 heatmaps

@contextlib.contextmanager
def strict_fp32():
    "fp32 convolutions and matrix products without TF32 (CUDA enables TF32 for convolutions by default)."
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try: yield
    finally: torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def first_steps(loader, n: int):
    "`(epoch, index, batch)` of a run's first `n` training steps on the trainer's `loader`, epoch after epoch."
    every = ((epoch, index, batch) for epoch in itertools.count(1)
             for index, batch in enumerate(epoch_batches(loader, epoch), 1))
    return itertools.islice(every, n)


def briefly_trained_model(ctx: Context, dataset) -> tuple:
    "A model after a few LD-Sqr steps on the synthetic data (its heatmaps not those of random weights), and its config."
    s, device = ctx.setting, ctx.device
    config = step_config(s, "ld_sqr", s.paper_batch, device)
    model, optimizer = training_model(config, device)
    for epoch, index, batch in first_steps(train_loader(dataset, config, device), s.heatmap_steps):
        train_step(model, optimizer, batch, config, device, epoch=epoch, index=index)
    return model, config


def compared_metrics(maps, raws, masks, boxes, image_hw, config: TrainConfig) -> dict:
    "Per image, from `image_metrics`: top- and all-saliency precision, and annotation coverage (covered / boxes)."
    metrics = image_metrics(maps, raws, masks, boxes, image_hw, config.k, config.tau,
                            ("top_precision", "all_precision", "boxes_covered"))
    n_boxes = torch.tensor([len(b) for b in boxes], dtype=torch.float64)
    return {"top_precision": metrics["top_precision"], "all_precision": metrics["all_precision"],
            "coverage": metrics["boxes_covered"].double() / n_boxes}


def heatmaps_section(ctx: Context, out: dict, deadline: float, args):
    s, device = ctx.setting, ctx.device
    dataset = synthetic_split(ctx)[0]
    model, config = briefly_trained_model(ctx, dataset)
    chosen = [i for i in range(len(dataset)) if dataset.labels[i] == 1 and len(dataset.boxes[i])][:s.compare_batch]
    if not chosen: raise RuntimeError("no positive image with boxes in the synthetic training split")
    images, _, masks, boxes, _ = collate([dataset[i] for i in chosen])
    x = to_network_input(images.to(device))
    image_hw, scores = tuple(images.shape[-2:]), {"common": config.eval_score}
    logits_bf16, maps_bf16, raws_bf16 = evaluation_heatmaps(model, x, scores, amp=True, with_raw=True)
    with strict_fp32():
        logits_fp32, maps_fp32, raws_fp32 = evaluation_heatmaps(model, x, scores, amp=False, with_raw=True)
    _, maps_default = evaluation_heatmaps(model, x, scores, amp=False)
    a, b = maps_bf16["common"], maps_fp32["common"]
    metrics = {name: compared_metrics(m, raw["common"], masks, boxes, image_hw, config)
               for name, m, raw in (("bf16", a, raws_bf16), ("fp32", b, raws_fp32))}
    out.update(images=len(chosen), grid=list(a.shape[-2:]), steps_trained=s.heatmap_steps,
               fp32_zero_share=float((b == 0).float().mean()),
               map_max_abs_diff=float((a - b).abs().max()), map_mean_abs_diff=float((a - b).abs().mean()),
               default_fp32_vs_strict_max_abs_diff=float((maps_default["common"] - b).abs().max()),
               logit_max_abs_diff=float((logits_bf16 - logits_fp32).abs().max()),
               predictions_agree=bool((logits_bf16.argmax(1) == logits_fp32.argmax(1)).all()),
               metric_max_abs_diff={k: float((metrics["bf16"][k] - metrics["fp32"][k]).abs().max())
                                    for k in metrics["fp32"]},
               metric_fp32_mean={k: float(v.mean()) for k, v in metrics["fp32"].items()})
    log(f"  {len(chosen)} positives with boxes, {a.shape[-2]}x{a.shape[-1]} maps ({out['fp32_zero_share']:.0%} zero "
        f"cells in fp32): max |bf16 - fp32| map {out['map_max_abs_diff']:.4f} (mean {out['map_mean_abs_diff']:.5f}), "
        f"logits {out['logit_max_abs_diff']:.4f}; metrics " +
        ", ".join(f"{k} {v:.4f}" for k, v in out["metric_max_abs_diff"].items()))


# ---------------------------------------------------------------- 5b. resume

TRAIN_CHILD = """
import json, sys, torch
from expaware_nb.train import TrainConfig, train_run
train_run(TrainConfig(**json.loads(sys.argv[1])), sys.argv[2])
flags = {"cudnn_deterministic": torch.backends.cudnn.deterministic, "cudnn_benchmark": torch.backends.cudnn.benchmark,
         "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
         "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
         "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
print(sys.argv[3] + json.dumps(flags), flush=True)
"""


def resume_config(ctx: Context) -> TrainConfig:
    r = dict(ctx.setting.resume)
    n_train, n_test = r.pop("n_train"), r.pop("n_test")
    return TrainConfig(data=str(ctx.root / f"resume-synthetic-{n_train}"),
                       synthetic={"n_train": n_train, "n_test": n_test, "seed": 0}, disease="Lung Opacity",
                       formulation="logit_sqr", alpha=1., weights=None, cache_dir=str(ctx.root / "cache"), panel_size=2,
                       device=str(ctx.device), **r)


def train_child_argv(config: TrainConfig, run_dir: Path) -> list:
    return [sys.executable, "-c", TRAIN_CHILD, json.dumps(asdict(config)), str(run_dir), RESULT]


def train_to_end(config: TrainConfig, run_dir: Path, deadline: float) -> dict:
    "Train (or resume) a run to its end in a child process; the determinism flags it ran with."
    code, out, err, timed_out = run_child(train_child_argv(config, run_dir), deadline - time.time(), child_env(),
                                          capture_stderr=True)
    if timed_out or code != 0:
        raise RuntimeError(f"training child {'timed out' if timed_out else f'exited {code}'}: {err[-800:]}")
    return child_results(out)[-1]


def epochs_done(run_dir: Path) -> int:
    return len(read_history(run_dir)) if (run_dir / HISTORY_FILE).exists() else 0


def train_and_kill(config: TrainConfig, run_dir: Path, after: int, deadline: float) -> dict:
    "Start a run in a child and SIGKILL it once `after` epochs are in its history."
    proc = subprocess.Popen(train_child_argv(config, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=child_env(), start_new_session=True)
    while epochs_done(run_dir) < after and proc.poll() is None and time.time() < deadline: time.sleep(.01)
    interrupted = proc.poll() is None
    if interrupted: kill_group(proc)
    err = proc.communicate()[1]
    if not interrupted and proc.returncode != 0: raise RuntimeError(f"run to interrupt failed: {err[-800:]}")
    return {"interrupted": interrupted and not (run_dir / "DONE").exists(), "killed_after_epoch": epochs_done(run_dir)}


def max_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    "Largest |a - b|, NaN equal to NaN (and infinitely far from a number)."
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape: return float("inf")
    both_nan = np.isnan(a) & np.isnan(b)
    diff = np.where(both_nan, 0., np.abs(a - b))
    return float(np.nan_to_num(diff, nan=np.inf).max(initial=0.))


def compare_runs(a: Path, b: Path, tolerance: float) -> dict:
    "History (without timings), final weights (checkpoint) and test metrics of two run folders."
    ha, hb = (read_history(d).drop(columns="seconds") for d in (a, b))
    wa, wb = (torch.load(d / CHECKPOINT_FILE, map_location="cpu", weights_only=True)["model"] for d in (a, b))
    ma, mb = (read_json(d / TEST_METRICS_FILE) for d in (a, b))
    numeric = sorted(k for k, v in ma.items()
                     if isinstance(v, (int, float)) and not k.startswith(("seconds", "epochs_run")))
    out = {"history": {"bit_identical": ha.equals(hb),
                       "max_abs_diff": max_abs_difference(ha.to_numpy(float), hb.to_numpy(float))},
           "weights": {"bit_identical": wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa),
                       "max_abs_diff": max((max_abs_difference(wa[k].double().numpy(), wb[k].double().numpy())
                                            for k in wa if k in wb), default=float("inf"))},
           "test_metrics": {"bit_identical": all(ma[k] == mb.get(k) or (ma[k] != ma[k] and mb.get(k) != mb.get(k))
                                                 for k in numeric) and ma.get("checkpoint") == mb.get("checkpoint"),
                            "max_abs_diff": max_abs_difference([ma[k] for k in numeric],
                                                               [mb.get(k, np.nan) for k in numeric])}}
    worst = max(v["max_abs_diff"] for v in out.values())
    identical = all(v["bit_identical"] for v in out.values())
    out["verdict"] = ("bit-identical" if identical else f"within tolerance {tolerance:g}" if worst <= tolerance
                      else f"beyond tolerance {tolerance:g}")
    out["tolerance"] = tolerance
    return out


def resume_section(ctx: Context, out: dict, deadline: float, args):
    config = resume_config(ctx)
    half = config.epochs // 2
    dirs = {name: ctx.root / "resume" / name for name in ("uninterrupted", "interrupted", "repeat")}
    for d in dirs.values(): shutil.rmtree(d, ignore_errors=True)
    out["config"] = {k: v for k, v in asdict(config).items() if k in ("arch", "image_size", "epochs", "batch_size",
                                                                     "formulation", "alpha", "synthetic", "device")}
    out["flags"] = train_to_end(config, dirs["uninterrupted"], deadline)
    out.update(train_and_kill(config, dirs["interrupted"], half, deadline))
    train_to_end(config, dirs["interrupted"], deadline)
    out["comparison"] = compare_runs(dirs["uninterrupted"], dirs["interrupted"], args.resume_tolerance)
    if ctx.device.type == "cuda":                                  # run-to-run noise, without any interruption
        train_to_end(config, dirs["repeat"], deadline)
        out["repeat_comparison"] = compare_runs(dirs["uninterrupted"], dirs["repeat"], args.resume_tolerance)
    c = out["comparison"]
    log(f"  {config.arch} {config.image_size} px, {config.epochs} epochs: killed after epoch "
        f"{out['killed_after_epoch']} (interrupted: {out['interrupted']}), resumed: {c['verdict']}; max |diff| history "
        f"{c['history']['max_abs_diff']:.3g}, weights {c['weights']['max_abs_diff']:.3g}, test metrics "
        f"{c['test_metrics']['max_abs_diff']:.3g}")
    if "repeat_comparison" in out:
        log(f"  uninterrupted repeat: {out['repeat_comparison']['verdict']}, max |diff| weights "
            f"{out['repeat_comparison']['weights']['max_abs_diff']:.3g}")
    log(f"  determinism flags in the runs: {out['flags']}")


# ---------------------------------------------------------------- driver

SECTIONS = (("throughput", throughput_section), ("packing", packing_section), ("data_path", data_path_section),
            ("projection", projection_section), ("heatmaps", heatmaps_section), ("resume", resume_section))


def write_json(path, report: dict):
    "Write the report (without its private `_` keys) atomically, with the package's own JSON writer."
    if path is None: return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(path, {k: v for k, v in report.items() if not k.startswith("_")})


def section_cap(setting: Setting, name: str) -> float:
    "Seconds a section may take (the throughput section: eager measurements, then the compile child's cap)."
    return setting.caps[name] + (setting.caps["compile"] if name == "throughput" else 0)


def run_section(ctx: Context, name: str, fn, args):
    "Run one section under its time cap; an exception becomes the section's error string."
    report = ctx.report
    cap = min(section_cap(ctx.setting, name), report["_budget_end"] - time.time())
    out = report[name] = {"ok": False, "error": None}
    log(f"\n== {name} (cap {cap:.0f} s)")
    t0 = time.time()
    if cap < 5: out["error"] = "skipped: the time budget is spent"
    else:
        try:
            fn(ctx, out, t0 + cap, args)
            out["ok"] = True
        except Exception as e:
            traceback.print_exc()
            out["error"] = short(e, 1000)
            log(f"  FAILED: {out['error']}")
    out["seconds"], out["cap_s"] = time.time() - t0, cap
    log(f"  ({name}: {out['seconds']:.1f} s)")
    free_memory()
    write_json(args.json, report)


def print_header(env: dict, setting: Setting, args):
    gpu = (f"{env['gpu']} ({env['gpu_memory_bytes'] / 2**30:.0f} GiB, sm {env['capability']})" if "gpu" in env
           else "none")
    log(f"GPU: {gpu}; device {env['device']}; torch {env['torch']} (CUDA {env['cuda']}, cuDNN {env['cudnn']}), "
        f"torchvision {env['torchvision']}, Python {env['python']}, triton {'present' if env['triton'] else 'absent'}")
    log(f"CPU: {env['cpu_count']} cores, OMP_NUM_THREADS={env['omp_num_threads']}, torch threads "
        f"{env['torch_threads']}; TF32 convolutions {env['cudnn_allow_tf32']}, TF32 matmul {env['matmul_allow_tf32']}")
    log(f"{'DRY RUN: ' if args.dry_run else ''}{setting.arch} at {setting.size} px, batches {setting.paper_batch} "
        f"and the largest up to {setting.max_batch}; budget {setting.budget_s:.0f} s; work files in {args.dir}")


def print_summary(report: dict):
    log("\n== summary")
    for name, _ in SECTIONS:
        section = report.get(name)
        if section is None: log(f"  {name:<11} not run"); continue
        log(f"  {name:<11} {'ok' if section.get('ok') else 'ERROR: ' + str(section.get('error'))}"
            f"  ({section.get('seconds', 0):.0f} s)")
    for m in report.get("throughput", {}).get("measurements", []):
        goal = "" if m.get("error") else f"  (goal <= 1.05: {'met' if m['time_ratio'] <= 1.05 else 'missed'})"
        print_measurement(m)
        if goal: log("   " + goal)
    for sc in report.get("projection", {}).get("scenarios", []):
        if not sc.get("error"):
            packed = f", {sc['gpu_hours_packed']:.0f} packed" if sc.get("gpu_hours_packed") else ""
            log(f"  projected GPU-hours, {sc['name']} {sc['batch']}: {sc['gpu_hours']:.0f} one run per GPU{packed}")
    if report.get("resume", {}).get("comparison"):
        log(f"  resume: {report['resume']['comparison']['verdict']}")
    log(f"  total {report['meta']['wall_s']:.0f} s")


def setting_of(args) -> Setting:
    setting = DRY_SETTING if args.dry_run else GPU_SETTING
    if getattr(args, "compile_cap", None): setting = replace(setting, caps={**setting.caps, "compile": args.compile_cap})
    if getattr(args, "compile_paper_batch_only", False): setting = replace(setting, compile_largest=False)
    return setting


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write every number to this JSON file (rewritten after each section)")
    p.add_argument("--device", help="torch device (default cuda; cpu with --dry-run)")
    p.add_argument("--dry-run", action="store_true", help="every code path on the CPU with the tiny DenseNet, ~1 min")
    p.add_argument("--dir", type=Path, help="work folder for the synthetic data and runs "
                                            "(default /tmp/expaware-bench-gpu, -dry with --dry-run)")
    p.add_argument("--budget", type=float, help="overall time budget in seconds (default 465; 400 dry)")
    p.add_argument("--sections", help=f"comma-separated subset of the sections to run (default all: "
                                       f"{', '.join(name for name, _ in SECTIONS)})")
    p.add_argument("--compile-cap", type=float, help="time cap of the compile child in seconds (default 140)")
    p.add_argument("--compile-paper-batch-only", action="store_true", help="compile at the paper's batch only")
    p.add_argument("--resume-tolerance", type=float, default=1e-2, help="max |difference| called 'within tolerance'")
    p.add_argument("--worker", choices=("compile", "packing"), help=argparse.SUPPRESS)
    p.add_argument("--batches", help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    p.add_argument("--barrier", help=argparse.SUPPRESS)
    p.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.device = args.device or ("cpu" if args.dry_run else "cuda")
    args.dir = args.dir or Path("/tmp/expaware-bench-gpu" + ("-dry" if args.dry_run else ""))
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.getLogger("expaware_nb").setLevel(logging.ERROR)   # the synthetic data's deliberately damaged files
    if args.worker == "compile": return compile_worker(args)
    if args.worker == "packing": return packing_worker(args)
    setting, device, t0 = setting_of(args), torch.device(args.device), time.time()
    if device.type == "cuda" and not torch.cuda.is_available(): sys.exit("CUDA is not available: use --dry-run or "
                                                                         "--device cpu")
    env = environment(device)
    print_header(env, setting, args)
    budget = args.budget or setting.budget_s
    report = {"_budget_end": t0 + budget, "meta": {**env, "dry_run": args.dry_run, "arch": setting.arch,
                                                   "size": setting.size, "budget_s": budget,
                                                   "setting": asdict(setting), "wall_s": None}}
    args.dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(setting, device, args.dir, report, args.dry_run)
    chosen = args.sections.split(",") if args.sections else [name for name, _ in SECTIONS]
    unknown = set(chosen) - {name for name, _ in SECTIONS}
    if unknown: sys.exit(f"unknown section(s) {sorted(unknown)}; valid: {', '.join(name for name, _ in SECTIONS)}")
    for name, fn in SECTIONS:
        if name in chosen: run_section(ctx, name, fn, args)
        report["meta"]["wall_s"] = time.time() - t0
    write_json(args.json, report)
    print_summary(report)


if __name__ == "__main__":
    main()
