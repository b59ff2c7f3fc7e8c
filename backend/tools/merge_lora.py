"""`python -m backend.tools.merge_lora`, the documented command: runs
backend/tools/lora/merge_lora.py (its docstring says what it does)."""

from backend.tools.lora.merge_lora import main
from backend.tools.lora.tool_cli import run_tool

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
