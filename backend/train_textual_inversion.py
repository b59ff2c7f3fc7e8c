"""Textual Inversion of SD 1.x and SD 2.x: `python -m backend.train_textual_inversion` (or under `accelerate launch`),
sd-scripts' train_textual_inversion.py.

A new word (--token_string) gets --num_vectors_per_token embedding vectors, trained in the frozen model
(backend/training/embedding_method.py); the file holds `emb_params`, as A1111, ComfyUI and diffusers load it.
"""

import sys

from backend.training.command import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("train_textual_inversion", argv)


if __name__ == "__main__":
    sys.exit(main())
