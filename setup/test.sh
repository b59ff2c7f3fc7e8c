#!/usr/bin/env bash
# README's test command: set up venv/ (the same installer as gui.sh), add the test requirements,
# run the whole pytest suite. Arguments pass through to pytest (after ours, so `-n 0` runs serially). pytest's
# exit code is returned unchanged, so "no tests collected" (5) fails too.
#
# The suite runs on one pytest-xdist worker per CPU (at most 4: each may hold a tiny training run and a
# browser), whole files to a worker so a module's trained fixture is made once, in the order tests/conftest.py
# gives (longest files first; xdist's own reorder by test count sent the one-test browser files last, so
# they ran side by side at the end). KOHYA_TEST_WORKERS overrides.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/setup/setup.sh" requirements-test.txt
cd "$repo"
workers="${KOHYA_TEST_WORKERS:-$(nproc 2>/dev/null || echo 2)}"
[ "$workers" -gt 4 ] && workers=4
exec "$repo/venv/bin/python" -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
