"""`python -m backend.tools.basic_caption`, the documented command: runs
backend/tools/captioning/basic_caption.py (its docstring says what it does)."""

from backend.tools.captioning.basic_caption import main
from backend.tools.cli.light_cli import run_light_tool

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(run_light_tool(main))
