"""DreamBooth of SD 1.x and SD 2.x: `python -m backend.train_db` (or under `accelerate launch`), sd-scripts'
train_db.py.

A full fine-tune (backend/training/finetune_method.py) from '<repeats>_<instance> <class>' folders with
regularization images (--reg_data_dir, weighted by --prior_loss_weight). As in sd-scripts, the text encoder
trains too, until --stop_text_encoder_training steps (-1: never), at --learning_rate_te. SDXL, FLUX.1 and SD 3.5
run DreamBooth with their fine-tune commands (sdxl_train, flux_train, sd3_train), as in kohya_ss.
"""

import sys

from backend.training.command import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("train_db", argv)


if __name__ == "__main__":
    sys.exit(main())
