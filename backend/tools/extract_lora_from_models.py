"""`python -m backend.tools.extract_lora_from_models`, the documented command: runs
backend/tools/lora/extract_lora_from_models.py (its docstring says what it does)."""

from backend.tools.lora.extract_lora_from_models import main
from backend.tools.lora.tool_cli import run_tool

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
