"""`python -m backend.tools.clean_captions_and_tags`, the documented command: runs
backend/tools/metadata/clean_captions_and_tags.py (its docstring says what it does)."""

from backend.tools.metadata.clean_captions_and_tags import main
from backend.tools.metadata.metadata_io import run_metadata_tool

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(run_metadata_tool(main))
