"""`python -m backend.tools.resize_lora`, the documented command: runs
backend/tools/lora/resize_lora.py (its docstring says what it does)."""

from backend.tools.lora.resize_lora import main
from backend.tools.lora.tool_cli import run_tool

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
