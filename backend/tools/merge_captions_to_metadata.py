"""`python -m backend.tools.merge_captions_to_metadata`, the documented command: runs
backend/tools/metadata/merge_captions_to_metadata.py (its docstring says what it does)."""

from backend.tools.metadata.merge_captions_to_metadata import main
from backend.tools.metadata.metadata_io import run_metadata_tool

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(run_metadata_tool(main))
