"""LoRA / LyCORIS training for SD 3.5 (Medium, Large): `python -m backend.sd3_train_network` (or under
`accelerate launch`), sd-scripts' sd3_train_network.py options.

Reads like a table of contents: options (backend/options: the shared ones plus --clip_l/--clip_g/--t5xxl/--vae
and the SD3 flow-matching flags), preflight checks, then the shared training loop with a network as the
training method (backend/training).
"""

import sys

from backend.training.command import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("sd3_train_network", argv)


if __name__ == "__main__":
    sys.exit(main())
