"""Full fine-tuning of FLUX.1 (dev, schnell): `python -m backend.flux_train` (or under `accelerate launch`),
sd-scripts' flux_train.py options.

Reads like a table of contents: options (backend/options), preflight checks, then the shared training
loop with the transformer's own weights as the training method (backend/training/finetune_method.py).
Several GPUs: docs/multi-gpu.md.
"""

import sys

from backend.training.command import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("flux_train", argv)


if __name__ == "__main__":
    sys.exit(main())
