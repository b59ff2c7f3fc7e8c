"""Merge caption files into fine-tuning metadata (sd-scripts' finetune/merge_captions_to_metadata.py).

    python -m backend.tools.merge_captions_to_metadata DIR OUT.json [--in_json IN.json]
        [--caption_extension .caption] [--full_path] [--recursive] [--debug]

Writes `{image_key: {"caption": ...}}`; without --in_json an existing OUT.json is read first, so
runs over several folders (with --full_path) add up.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from backend.tools.flags.metadata import MERGE_CAPTIONS
from backend.tools.metadata.metadata_io import run_metadata_tool
from backend.tools.metadata.metadata_merge import merge_main


def main(argv: Sequence[str] | None = None) -> None:
    merge_main(argv, MERGE_CAPTIONS, "caption")


if __name__ == "__main__":
    sys.exit(run_metadata_tool(main))
