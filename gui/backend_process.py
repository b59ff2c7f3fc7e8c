"""Where the GUI starts the backend's processes: the repository folder and the Python that runs them.

Shell facts, used by every room that starts a process (training runs, tools, TensorBoard, preflight,
exported scripts): the trainers and tools are run as `<venv python> -m backend.<module>` from the
repository root, so `backend` is importable without installing the project.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The venv interpreter relative to REPO, as the setup scripts create it (also written into exported scripts).
VENV_PYTHON_POSIX = "venv/bin/python"
VENV_PYTHON_WINDOWS = "venv\\Scripts\\python.exe"


def venv_python(repo: Path = REPO) -> str:
    """The repo's venv interpreter; the current one when there is no venv (a developer checkout)."""
    candidate = repo / (VENV_PYTHON_WINDOWS if os.name == "nt" else VENV_PYTHON_POSIX)
    return str(candidate) if candidate.exists() else sys.executable
