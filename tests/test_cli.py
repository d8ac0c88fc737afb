"The `expaware` console script, as a user runs it (installed entry point, separate process)."
import subprocess

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


def test_demo_placeholder_says_what_is_missing_and_fails():
    out = expaware("demo")
    assert out.returncode == 1
    assert "not built yet" in out.stderr and "sweep" in out.stderr
