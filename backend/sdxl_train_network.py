"""LoRA / LyCORIS training for SDXL: `python -m backend.sdxl_train_network` (or under `accelerate launch`).

Reads like a table of contents: options (backend/options), preflight checks, then the shared
training loop with a network as the training method (backend/training).
"""

import sys

from backend.training.command import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("sdxl_train_network", argv)


if __name__ == "__main__":
    sys.exit(main())
