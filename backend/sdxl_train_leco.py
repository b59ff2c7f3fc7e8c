"""LECO for SDXL: `python -m backend.sdxl_train_leco` (or under `accelerate launch`), sd-scripts' sdxl_train_leco.py.

A U-Net LoRA trained without images, from the model's own predictions on the prompts of --prompts_file
(backend/training/leco_prompts.py, leco_step.py); saved as sdxl_train_network saves a LoRA.
"""

import sys

from backend.training.command import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("sdxl_train_leco", argv)


if __name__ == "__main__":
    sys.exit(main())
