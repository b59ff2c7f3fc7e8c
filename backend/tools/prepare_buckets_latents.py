"""`python -m backend.tools.prepare_buckets_latents`, the documented command: runs
backend/tools/metadata/prepare_buckets_latents.py (its docstring says what it does)."""

from backend.tools.metadata.metadata_io import run_metadata_tool
from backend.tools.metadata.prepare_buckets_latents import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(run_metadata_tool(main))
