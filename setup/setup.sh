#!/usr/bin/env bash
# The one installer: creates venv/ at the repo root with Python 3.10 or 3.11 and installs the
# pinned requirements (plus any extra requirements files given as arguments). Idempotent and
# quiet when nothing changed. Set PYTHON to choose an interpreter, TORCH_INDEX_URL to choose a
# torch build (CUDA/ROCm/CPU wheel index).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/venv"

supported() { "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 10), (3, 11)) else 1)' 2>/dev/null; }

if [ ! -x "$venv/bin/python" ] || ! supported "$venv/bin/python"; then
  found=()
  chosen=""
  for candidate in ${PYTHON:-} python3.11 python3.10 python3 python; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    found+=("$candidate ($("$candidate" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '?'))")
    if supported "$candidate"; then chosen="$candidate"; break; fi
  done
  if [ -z "$chosen" ]; then
    echo "error: Python 3.10 or 3.11 is required to create venv/." >&2
    if [ ${#found[@]} -gt 0 ]; then
      echo "found: ${found[*]}" >&2
    else
      echo "found: no python3 on PATH" >&2
    fi
    echo "Install Python 3.11 (or 3.10), or point PYTHON at one: PYTHON=/path/to/python3.11 $0" >&2
    exit 1
  fi
  [ -d "$venv" ] && { echo "Recreating venv/ (it was not a working Python 3.10/3.11 environment)."; rm -rf "$venv"; }
  echo "Creating venv/ with $chosen..."
  "$chosen" -m venv "$venv"
fi

cd "$repo"
"$venv/bin/python" setup/install.py requirements.txt "$@"
