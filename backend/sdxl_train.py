"""Full fine-tuning of SDXL: `python -m backend.sdxl_train` (or under `accelerate launch`).

Reads like a table of contents: options (backend/options), preflight checks, then the shared
training loop with the model's own weights as the training method (backend/training/finetune_method.py).
Captions come from a metadata file (--in_json) or, without one, from '<repeats>_<name>' folders.
Several GPUs: docs/multi-gpu.md.
"""

import sys

from backend.training.command import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("sdxl_train", argv)


if __name__ == "__main__":
    sys.exit(main())
