"""Merge tag files (DeepDanbooru/WD14) into fine-tuning metadata (sd-scripts' merge_dd_tags_to_metadata.py).

    python -m backend.tools.merge_dd_tags_to_metadata DIR OUT.json [--in_json IN.json]
        [--caption_extension .txt] [--full_path] [--recursive] [--debug]

Writes `{image_key: {"tags": ...}}` beside any existing caption; without --in_json an existing
OUT.json is read first, so runs add up.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from backend.tools.flags.metadata import MERGE_TAGS
from backend.tools.metadata.metadata_io import run_metadata_tool
from backend.tools.metadata.metadata_merge import merge_main


def main(argv: Sequence[str] | None = None) -> None:
    merge_main(argv, MERGE_TAGS, "tags")


if __name__ == "__main__":
    sys.exit(run_metadata_tool(main))
