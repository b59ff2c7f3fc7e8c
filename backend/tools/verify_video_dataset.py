"""`python -m backend.tools.verify_video_dataset`, the documented command: runs
backend/tools/dataset/verify_video_dataset.py (its docstring says what it does)."""

from backend.tools.cli.light_cli import run_light_tool
from backend.tools.dataset.verify_video_dataset import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(run_light_tool(main))
