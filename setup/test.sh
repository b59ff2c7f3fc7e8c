#!/usr/bin/env bash
# README's test command: set up venv/ (the same installer as gui.sh), add the test requirements,
# run the whole pytest suite. Arguments pass through to pytest. pytest's exit code is returned
# unchanged, so "no tests collected" (5) fails too.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/setup/setup.sh" requirements-test.txt
cd "$repo"
exec "$repo/venv/bin/python" -m pytest "$@"
