"The `expaware` console script, as a user runs it (installed entry point, separate process)."
import subprocess

import pandas as pd
import pytest

import expaware_nb


def expaware(*args):
    return subprocess.run(["expaware", *args], capture_output=True, text=True, timeout=120)


def test_version_is_the_package_version():
    out = expaware("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"expaware-nb {expaware_nb.__version__}"


def test_no_subcommand_prints_usage_and_fails():
    out = expaware()
    assert out.returncode == 2
    assert "usage: expaware" in out.stdout


def test_unknown_subcommand_is_a_usage_error():
    out = expaware("frobnicate")
    assert out.returncode == 2
    assert "invalid choice: 'frobnicate'" in out.stderr


def test_status_of_an_empty_folder(tmp_path):
    out = expaware("status", "--runs", str(tmp_path))
    assert out.returncode == 0 and "no cells found" in out.stdout


@pytest.mark.slow
def test_demo_end_to_end_on_a_reduced_grid(tmp_path):
    "The README's first command, on a smaller grid: data, cache, sweep, summary, where the results are."
    out = subprocess.run(["expaware", "demo", "--runs", "runs/demo", "--workers", "2", "--set",
                          "formulations=[bce, logit_sqr]",
                          "--set", "alphas=[1.0]", "--set", "epochs=2", "--set",
                          "synthetic={n_train: 80, n_test: 30, seed: 0}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "results table: runs/demo/results.csv   (2 finished runs)" in out.stdout
    assert (tmp_path / "data" / "replication" / "shortcut" / "synthetic.json").exists()
    assert len(list((tmp_path / "runs" / "demo" / "shortcut").glob("*/DONE"))) == 2
    assert "other settings than the shipped replication" in out.stdout       # a reduced grid is not compared


@pytest.mark.slow
def test_demo_cells_are_compared_with_the_shipped_replication(tmp_path):
    "Two of the demo's cells at the replication's settings, on a fresh data folder: each is set beside its cell's spread."
    out = subprocess.run(["expaware", "demo", "--runs", "runs/demo", "--workers", "2", "--set",
                          "formulations=[bce, logit_sqr]", "--set", "alphas=[1.0]"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "the demo against the shipped replication (the same cells, 3 seeds" in out.stdout
    checked = pd.read_csv(tmp_path / "figures" / "demo_vs_reference.csv")
    assert len(checked) == 2 and (checked.seeds == 3).all(), checked
    assert checked[[f"{m}_inside" for m in ("accuracy", "all_precision", "top_precision", "coverage")]].notna().all().all()


# What each command calls, and how its options map to the parameters of those functions. Every option of every
# command is either compared with the parameter it stands for, or named here as the command line's own.
POSITIONAL = {"task": ["data/x", "effusion"], "cache": ["data/x"], "check-data": ["data/x"], "sweep": ["demo"], "paper": ["runs"],
              "view": ["runs"]}
OWN = {  # options whose default is the command line's own, not a function's
    "synth": {"out"},                                                  # make_synthetic_dataset's out_dir has none
    "task": {"data", "diseases"}, "cache": {"data"}, "check-data": {"data"},
    "sweep": {"profile", "runs", "workers", "set", "partition", "time", "gpus", "cpus", "mem", "array_parallelism",
              "max_requeues", "signal_delay"},                         # the profile's, or one worker per GPU
    "status": {"runs"}, "paper": {"runs", "notebooks"}, "view": {"runs", "port", "no_browser"},
    "demo": {"runs", "workers", "set"}}


def calls():
    "{command: [(function, {option: parameter})]}: the functions each command passes its options to."
    from expaware_nb.annotations import make_task
    from expaware_nb.cache import build_cache
    from expaware_nb.checkdata import check_data
    from expaware_nb.render import render_paper
    from expaware_nb.sweep import sweep
    from expaware_nb.layouts import make_synthetic_layout
    from expaware_nb.synth import make_synthetic_dataset
    from expaware_nb.viewer import viewer_notebook
    figures = (render_paper, {"figures": "figures_dir"})
    return {"synth": [(make_synthetic_dataset, {}), (make_synthetic_layout, {})], "task": [(make_task, {})],
            "cache": [(build_cache, {"out": "cache_root"})], "check-data": [(check_data, {})], "sweep": [(sweep, {}), figures],
            "profiles": [], "status": [], "paper": [(render_paper, {"figures": "figures_dir"})],
            "view": [(viewer_notebook, {})], "demo": [figures]}


def test_every_option_defaults_to_its_function_parameter():
    import inspect
    from pathlib import Path
    from expaware_nb.cli import COMMANDS, make_parser
    calls_of = calls()
    assert set(calls_of) == set(COMMANDS)
    for command, functions in calls_of.items():
        args = vars(make_parser().parse_args([command, *POSITIONAL.get(command, [])]))
        options = set(args) - {"command", "func"}
        compared = set()
        for f, renamed in functions:
            parameters = inspect.signature(f).parameters
            for option in options - OWN.get(command, set()):
                name = renamed.get(option, option)
                if name not in parameters: continue
                default = parameters[name].default
                expected = Path(default) if isinstance(args[option], Path) else default
                assert args[option] == expected, (command, option, args[option], f.__name__, default)
                compared.add(option)
        assert options - OWN.get(command, set()) == compared, (command, "options with no parameter behind them")


def test_reading_options_offer_the_readings_choices():
    from expaware_nb.cli import make_parser
    from expaware_nb.results import READING, READING_CHOICES
    from expaware_nb.synth import WORLDS
    paper = make_parser()._subparsers._group_actions[0].choices["paper"]
    choices = {a.dest: tuple(a.choices) for a in paper._actions if a.choices}
    assert choices == READING_CHOICES and {k: paper.get_default(k) for k in READING} == READING
    synth = make_parser()._subparsers._group_actions[0].choices["synth"]
    assert next(tuple(a.choices) for a in synth._actions if a.dest == "world") == WORLDS
