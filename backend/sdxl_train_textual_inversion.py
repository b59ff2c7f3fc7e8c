"""Textual Inversion of SDXL: `python -m backend.sdxl_train_textual_inversion` (or under `accelerate launch`),
sd-scripts' sdxl_train_textual_inversion.py.

The new word gets vectors in both text encoders (backend/training/embedding_method.py); the file holds `clip_l`
and `clip_g`, as A1111, ComfyUI and diffusers load SDXL embeddings.
"""

import sys

from backend.training.command import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("sdxl_train_textual_inversion", argv)


if __name__ == "__main__":
    sys.exit(main())
