"""Full fine-tuning of SD 3.5 (Medium, Large): `python -m backend.sd3_train` (or under `accelerate launch`),
sd-scripts' sd3_train.py options.

Reads like a table of contents: options (backend/options), preflight checks, then the shared training
loop with the MMDiT's own weights as the training method (backend/training/finetune_method.py).
"""

import sys

from backend.training.command import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("sd3_train", argv)


if __name__ == "__main__":
    sys.exit(main())
