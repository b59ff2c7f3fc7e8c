"""LoRA / LyCORIS training for FLUX.1 (dev, schnell): `python -m backend.flux_train_network`
(or under `accelerate launch`), sd-scripts' flux_train_network.py options.

Reads like a table of contents: options (backend/options: the shared ones plus the FLUX.1 model files
--clip_l/--t5xxl/--ae and the flow-matching flags), preflight checks, then the shared training loop with
a network as the training method (backend/training).
"""

import sys

from backend.training.command import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("flux_train_network", argv)


if __name__ == "__main__":
    sys.exit(main())
