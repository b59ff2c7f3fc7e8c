"""`python -m backend.tools.prepare_dataset`, the documented command: runs
backend/tools/dataset/prepare_dataset.py (its docstring says what it does)."""

from backend.tools.cli.light_cli import run_light_tool
from backend.tools.dataset.prepare_dataset import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(run_light_tool(main))
