"""`python -m backend.tools.tag_images_by_wd14_tagger`, the documented command: runs
backend/tools/captioning/tag_images_by_wd14_tagger.py (its docstring says what it does)."""

from backend.tools.captioning.tag_images_by_wd14_tagger import main
from backend.tools.cli.light_cli import run_light_tool

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(run_light_tool(main))
