"""The SLURM backend on a real SLURM cluster: one node (this machine), Debian's slurm-wlm and munge, started by the
test as root with its own configuration, ports and state folders, and stopped (exactly the daemons it started) at the
end. Users run the sweep the same way (`expaware sweep PROFILE --backend slurm ...`):

- a job array runs the grid to completion, with the same results as the local backend;
- a cancelled array task leaves its cell interrupted; resubmitting runs only the unfinished cell, which resumes from
  its last epoch, and no finished cell runs again;
- a cell longer than its job's time limit is requeued by submitit before the limit, saving at the batch where the
  signal found it, and finishes over several jobs, with the same results as an uninterrupted run.

Skipped when SLURM cannot be started here (not root, packages missing), unless EXPAWARE_REQUIRE_SLURM=1 (CI sets it
after installing the packages)."""
import json, os, shutil, socket, subprocess, sys, time
from pathlib import Path

import pytest

from expaware_nb.runs import collect_runs, read_json

pytestmark = pytest.mark.slow      # trains on a real scheduler, with requeues
REQUIRED = os.environ.get("EXPAWARE_REQUIRE_SLURM") == "1"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo")
GRID = ["--set", "formulations=[bce,logit_sqr]", "--set", "alphas=[1.0]", "--set", "image_size=128",
        "--set", "synthetic={n_train: 300, n_test: 60, seed: 0}"]


def why_not() -> str | None:
    "Why a SLURM cluster cannot be started here, or None."
    if os.geteuid() != 0: return "the test starts SLURM and munge daemons, which needs root"
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing: return f"SLURM or munge not installed (missing {', '.join(missing)}; apt-get install slurm-wlm munge)"
    return None


def munge_works() -> bool:
    out = subprocess.run("munge -n | unmunge", shell=True, capture_output=True, text=True)
    return out.returncode == 0 and "Success" in out.stdout


def start_munge(folder: Path) -> subprocess.Popen | None:
    "A munged of our own unless one already answers; None when one does."
    if munge_works(): return None
    for d in ("/etc/munge", "/run/munge", "/var/log/munge", "/var/lib/munge"):
        Path(d).mkdir(parents=True, exist_ok=True)
    key = Path("/etc/munge/munge.key")
    if not key.exists(): key.write_bytes(os.urandom(1024))
    subprocess.run(["chown", "-R", "munge:munge", "/etc/munge", "/run/munge", "/var/log/munge", "/var/lib/munge"],
                   check=True)
    key.chmod(0o400)
    daemon = subprocess.Popen(["runuser", "-u", "munge", "--", "munged", "-F", "--force"],
                              stdout=open(folder / "munged.log", "w"), stderr=subprocess.STDOUT)
    wait_for(munge_works, 30, "munged to answer")
    return daemon


def free_ports(n: int) -> list:
    "`n` TCP ports free now (the test's cluster must not meet another one on this machine)."
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets: s.bind(("", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets: s.close()
    return ports


def slurm_conf(folder: Path) -> Path:
    host = socket.gethostname().split(".")[0]
    ctld, slurmd = free_ports(2)
    lines = ["ClusterName=expaware-test", f"SlurmctldHost={host}", f"SlurmctldPort={ctld}", f"SlurmdPort={slurmd}",
             "AuthType=auth/munge", "AuthInfo=cred_expire=10",           # a requeued job may start again after 10 s
             "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
             "SelectTypeParameters=CR_Core", "SlurmUser=root", "SlurmdUser=root", "ReturnToService=2",
             "MpiDefault=none", "KillWait=5", "JobAcctGatherType=jobacct_gather/none",
             "SchedulerParameters=sched_interval=2,bf_interval=2",
             f"StateSaveLocation={folder}/state", f"SlurmdSpoolDir={folder}/spool",
             f"SlurmctldPidFile={folder}/slurmctld.pid", f"SlurmdPidFile={folder}/slurmd.pid",
             f"SlurmctldLogFile={folder}/slurmctld.log", f"SlurmdLogFile={folder}/slurmd.log",
             f"NodeName={host} CPUs={os.cpu_count()} RealMemory=1000 State=UNKNOWN",
             "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"]
    (folder / "state").mkdir(); (folder / "spool").mkdir()
    (folder / "slurm.conf").write_text("\n".join(lines) + "\n")
    return folder / "slurm.conf"


def wait_for(condition, seconds: float, what: str, every: float = .5):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition(): return
        time.sleep(every)
    raise TimeoutError(f"waited {seconds:.0f}s for {what}")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    "The environment of a running one-node SLURM cluster (SLURM_CONF set), for the test's commands."
    reason = why_not()
    if reason: (pytest.fail if REQUIRED else pytest.skip)(f"SLURM cannot be started: {reason}")
    folder = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SLURM_CONF": str(slurm_conf(folder)), "OMP_NUM_THREADS": "1"}
    started = [d for d in [start_munge(folder)] if d is not None]
    try:
        for daemon in (["slurmctld", "-D", "-i"], ["slurmd", "-D"]):
            started.append(subprocess.Popen(daemon, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        idle = lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True,
                                                text=True).stdout
        wait_for(idle, 60, "the SLURM node to be idle")
        yield env
    finally:
        for daemon in reversed(started):
            daemon.terminate()
            try: daemon.wait(timeout=20)
            except subprocess.TimeoutExpired: daemon.kill()


def expaware(*args, cwd, env, timeout=900) -> str:
    out = subprocess.run([str(Path(sys.executable).parent / "expaware"), *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, f"expaware {' '.join(args)}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def jobs_left(env) -> list:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], env=env, capture_output=True, text=True)
    return out.stdout.split()


def results(runs: Path):
    "The results table without what differs between two executions of the same runs (times, paths)."
    table = collect_runs(runs)
    varying = [c for c in table.columns if c.startswith(("seconds", "epochs_run")) or c == "path"]
    return table.drop(columns=varying).sort_values("id").reset_index(drop=True)


def cell_dir(runs: Path, formulation: str) -> Path:
    return next(p.parent for p in runs.glob("*/*/cell.json") if f"__{formulation}__" in p.parent.name)


def attempts(run_dir: Path) -> list:
    return [json.loads(line) for line in (run_dir / "attempts.jsonl").read_text().splitlines()]


def test_job_array_cancel_and_resubmit(slurm, tmp_path):
    grid = [*GRID, "--set", "epochs=100"]       # long enough for status to see the guided cell running
    out = expaware("sweep", "demo", "--runs", "runs", "--backend", "slurm", "--cpus", "1", *grid, cwd=tmp_path,
                   env=slurm)
    assert "submitted 2 cells as SLURM job(s)" in out, out
    runs = tmp_path / "runs"
    guided = cell_dir(runs, "logit_sqr")
    history = guided / "history.csv"
    wait_for(lambda: history.exists() and len(history.read_text().splitlines()) >= 3, 300,
             "two epochs of the guided cell")
    job = read_json(guided / "SUBMITTED.json")["job_id"]
    status = expaware("status", "--runs", "runs", cwd=tmp_path, env=slurm)
    assert f"{guided.name}: job {job} RUNNING" in status, status               # status shows the SLURM job
    subprocess.run(["scancel", job], env=slurm, check=True)
    wait_for(lambda: not jobs_left(slurm), 300, "the array to end")
    status = expaware("status", "--runs", "runs", cwd=tmp_path, env=slurm)
    assert "1 done" in status and "1 interrupted" in status, status
    assert not (guided / "FAILED.json").exists() and "failed" not in [a["event"] for a in attempts(guided)]
    finished = {p: p.stat().st_mtime_ns for p in runs.glob("*/*/DONE")}

    out = expaware("sweep", "demo", "--runs", "runs", "--backend", "slurm", "--cpus", "1", *grid, cwd=tmp_path,
                   env=slurm)
    assert "submitted 1 cells as SLURM job(s)" in out, out                      # only the unfinished cell
    wait_for(lambda: not jobs_left(slurm), 600, "the resubmitted cell")
    assert {p: p.stat().st_mtime_ns for p in finished} == finished            # the finished cell did not run again
    metrics = read_json(guided / "test_metrics.json")
    assert 0 < metrics["epochs_run_in_this_process"] < 100, metrics             # resumed from its last epoch

    expaware("sweep", "demo", "--runs", "local", "--workers", "2", *grid, cwd=tmp_path, env=slurm)
    assert results(runs).equals(results(tmp_path / "local"))                    # the same numbers as the local backend


def test_time_limit_requeues_until_done(slurm, tmp_path):
    # a DenseNet-121 at 128 px, batches of 4: 2.5-3.5 s an epoch on one core, 100-140 s of training in all, more
    # than the longest window a job leaves for training (below): at least two jobs
    grid = [*GRID, "--set", "formulations=[logit_sqr]", "--set", "arch=densenet121", "--set", "batch_size=4",
            "--set", "epochs=40"]
    # 2-minute jobs, signalled 30 s before their limit: SLURM may send the signal up to 60 s early, so it comes 30 to
    # 90 s into a job, after submitit's handler is installed even on a loaded machine (a signal before that ends the
    # job instead of requeueing it). Each job spends 10-20 s or more starting (kernel, imports, data): an attempt
    # trains what is left, often a part of an epoch, and keeps every batch it trained (saved on the signal)
    out = expaware("sweep", "demo", "--runs", "runs", "--backend", "slurm", "--cpus", "1", "--time", "2",
                   "--signal-delay", "30", "--max-requeues", "40", *grid, cwd=tmp_path, env=slurm)
    assert "submitted 1 cells as SLURM job(s)" in out, out
    run_dir = cell_dir(tmp_path / "runs", "logit_sqr")
    job, shown = read_json(run_dir / "SUBMITTED.json")["job_id"], []
    def requeue_shown():
        shown.append(expaware("status", "--runs", "runs", cwd=tmp_path, env=slurm))
        return "requeued 1x" in shown[-1] or (run_dir / "DONE").exists()
    wait_for(requeue_shown, 1800, "status to show the requeued job", every=2)
    assert any(f"job {job} " in s and "requeued 1x" in s for s in shown), shown[-1]
    wait_for(lambda: (run_dir / "DONE").exists() or not jobs_left(slurm), 3600, "the cell to finish", every=2)
    events = attempts(run_dir)
    restarts = sorted({int(a.get("restart", 0)) for a in events if a["event"] == "start"})
    assert (run_dir / "DONE").exists() and len(restarts) >= 2, events          # the job, requeued
    saved = [a for a in events if a["event"] == "requeue" and a["saved_at_stop"]]
    assert saved, events                             # the training saved at a batch boundary before the requeue
    assert read_json(run_dir / "test_metrics.json")["epochs_run_in_this_process"] < 40
    print(f"finished over {len(restarts)} jobs; {len(saved)} saved at a batch boundary on the signal")

    expaware("sweep", "demo", "--runs", "local", "--workers", "2", *grid, cwd=tmp_path, env=slurm)
    assert results(tmp_path / "runs").equals(results(tmp_path / "local"))       # the same as an uninterrupted run
