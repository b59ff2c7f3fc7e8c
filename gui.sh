#!/usr/bin/env bash
# Start the GUI: first run creates venv/ and installs everything; later runs start in seconds.
# All arguments pass through to kohya_gui.py (see ./gui.sh --help).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$repo/setup/setup.sh"
cd "$repo"
exec "$repo/venv/bin/python" kohya_gui.py "$@"
