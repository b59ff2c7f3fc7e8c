"""Video LoRA and fine-tuning in the finetrainers tradition: `python -m backend.train_video` (or under
`accelerate launch -m backend.train_video`), finetrainers' options (`--model_name ltx_video|wan ...`).

Options (backend/options/defs/video.py), preflight (backend/video/preflight.py), then the shared training
loop over the video clips (backend/video/).
"""

import sys

from backend.video.command import run_video_command


def main(argv: list[str] | None = None) -> int:
    return run_video_command(argv)


if __name__ == "__main__":
    sys.exit(main())
