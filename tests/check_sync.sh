#!/usr/bin/env bash
# Fail when a notebook stops reading as a document or a file points outside the repository (tests/check_docs.py),
# or an export cell is not followed by a test or example (tools/notebook_rhythm.py); and when nbdev-clean,
# nbdev-export or tools/package_data.py changes a file: the notebooks and configs/ (the sources) and the generated
# package expaware_nb/ are out of sync, or a notebook was saved uncleaned.
# Compares a hash of every file under nbs/ and expaware_nb/ before and after, so it also works
# on a working tree with uncommitted changes, and names the files that changed.
set -u
cd "$(git rev-parse --show-toplevel)" || exit 1
status=0
python tests/check_docs.py || status=1
rhythm=$(python tools/notebook_rhythm.py --check) || { echo "$rhythm" >&2; echo "FAIL: the export cells listed are not followed by a test or example" >&2; status=1; }
echo "$rhythm" | tail -1
state() { git ls-files -z --cached --others --exclude-standard -- nbs expaware_nb configs | sort -z | xargs -0 sha1sum 2>/dev/null; }
before=$(state)
nbdev-clean >/dev/null || { echo "FAIL: nbdev-clean failed" >&2; exit 1; }
nbdev-export >/dev/null || { echo "FAIL: nbdev-export failed" >&2; exit 1; }
python tools/package_data.py >/dev/null || { echo "FAIL: tools/package_data.py failed" >&2; exit 1; }
after=$(state)
if [ "$before" != "$after" ]; then
  echo "FAIL: nbdev-clean / nbdev-export / tools/package_data.py changed files: sources and expaware_nb/ were out of sync." >&2
  echo "nbs/ and configs/ are the source: edit them, run nbdev-clean && nbdev-export && python tools/package_data.py," >&2
  echo "and commit. Changed:" >&2
  diff <(echo "$before") <(echo "$after") | awk '/^[<>]/ {print $3}' | sort -u | sed 's/^/  /' >&2
  exit 1
fi
echo "notebooks and expaware_nb/ in sync"
exit $status
