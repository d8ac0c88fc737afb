#!/usr/bin/env bash
# The project's test command (README, .ci/run): install, check that the notebooks and the
# package agree, run every notebook's tests (nbdev-test), then the integration tests (pytest).
# Runs every stage and exits non-zero if any failed.
set -u
cd "$(dirname "$0")/.." || exit 1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"   # nbdev-test runs notebooks in parallel processes

python -m pip install --quiet -e ".[dev]" || { echo "FAIL: install" >&2; exit 1; }

failed=()
echo "== notebooks: in sync with the package, read as documents"; bash tests/check_sync.sh || failed+=(sync)
echo "== nbdev-test";                      nbdev-test --timing || failed+=(nbdev-test)
echo "== pytest";                          python -m pytest -ra --durations=25 tests || failed+=(pytest)

if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]}" >&2; exit 1; fi
echo "all tests passed"
