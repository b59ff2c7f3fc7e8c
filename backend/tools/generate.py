"""`python -m backend.tools.generate`, the documented command: runs backend/tools/generation/generate.py (its
docstring says what it does)."""

from backend.tools.cli.light_cli import run_light_tool
from backend.tools.generation.generate import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(run_light_tool(main))
