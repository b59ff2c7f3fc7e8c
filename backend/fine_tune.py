"""Full fine-tuning of SD 1.x and SD 2.x: `python -m backend.fine_tune` (or under `accelerate launch`).

Reads like a table of contents: options (backend/options), preflight checks, then the shared
training loop with the model's own weights as the training method (backend/training/finetune_method.py).
Captions come from a metadata file (--in_json) written by the backend/tools metadata tools.
"""

import sys

from backend.training.command import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("fine_tune", argv)


if __name__ == "__main__":
    sys.exit(main())
