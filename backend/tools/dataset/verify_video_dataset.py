"""Check a video dataset before training, as `train_video` reads it: clips, captions, frame and size buckets.

    python -m backend.tools.verify_video_dataset DATA_ROOT [--model_name wan] [--video_resolution_buckets
        "49x512x768 81x480x832"] [--dataset_file table.csv] [--video_column video] [--caption_column text]
        [--id_token TOKEN] [--json]

DATA_ROOT is a folder in one of finetrainers' layouts (videos with same-name `.txt` captions, or
`prompts.txt` + `videos.txt`), or the folder a `--dataset_file` table's paths are relative to. The checks are
train_video's own preflight (backend/video/preflight.py `check_video_data`: the family's VAE decides the
frame counts and sizes a bucket may have, every file is probed with PyAV), without a model, so what this
reports is what training will see: usable clips per bucket (the JSON: each clip's frames, size, frame rate
and bucket), and every file or caption that cannot be used, with what to do. Exit status: 0 when the dataset
can be trained on as it is, 1 when something is unusable or nothing can be trained, 2 for a missing folder or
bad options.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from backend.messages import msg
from backend.tools.cli.light_cli import InputError, run_light_tool
from backend.tools.dataset.caption_files import image_folder
from backend.tools.flags.dataset import VERIFY_VIDEO_DATASET
from backend.tools.flags.parser import build_parser as parser_of


def build_parser() -> argparse.ArgumentParser:
    return parser_of(VERIFY_VIDEO_DATASET)  # the flags: backend/tools/flags/dataset.py


def train_video_args(args: argparse.Namespace) -> argparse.Namespace:
    """The train_video options these flags stand for (no model: the data checks do not read one)."""
    from backend.options import OptionError, parse_args

    argv = ["--model_name", args.model_name, "--pretrained_model_name_or_path", "-", "--output_dir", "-",
            "--training_type", "lora", "--data_root", str(args.data_root)]
    for name in ("dataset_file", "video_column", "caption_column", "id_token"):
        if getattr(args, name):
            argv += [f"--{name}", str(getattr(args, name))]
    if args.video_resolution_buckets:
        argv += ["--video_resolution_buckets", *str(args.video_resolution_buckets).split()]
    try:
        return parse_args("train_video", argv)
    except OptionError as exc:  # a bucket written wrongly, say: a bad option (exit 2), said as train_video says it
        raise InputError(str(exc)) from exc


def verify(args: argparse.Namespace) -> dict[str, Any]:
    root = image_folder(args.data_root, "data_root")
    from backend.video.preflight import check_video_data  # torch (PyAV probes): once the folder is found

    plan = check_video_data(train_video_args(args))
    buckets: dict[str, int] = {}
    for clip in plan.scanned:
        key = "x".join(map(str, clip.bucket))
        buckets[key] = buckets.get(key, 0) + 1
    return {
        "data_root": str(root), "model": plan.declaration.label if plan.declaration else args.model_name,
        "ok": plan.ok and bool(plan.scanned), "clips": len(plan.scanned), "buckets": dict(sorted(buckets.items())),
        "errors": plan.errors,
        "clips_detail": [{"path": str(c.record.path), "frames": c.info.frames, "width": c.info.width,
                          "height": c.info.height, "fps": c.info.fps, "bucket": list(c.bucket)}
                         for c in plan.scanned],
    }  # fmt: skip


def format_report(report: dict[str, Any]) -> str:
    lines = [msg("tool.video_verify.summary", "{root}: {clips} usable clip(s) for {model}", root=report["data_root"],
                 clips=report["clips"], model=report["model"])]
    for bucket, count in report["buckets"].items():
        lines.append("  " + msg("tool.video_verify.bucket", "bucket {bucket} (frames x height x width): {count} "
                                "clip(s)", bucket=bucket, count=count))
    lines += report["errors"]
    if not report["clips"] and not report["errors"]:
        lines.append(msg("tool.video_verify.nothing", "no clip can be trained on"))
    lines.append(msg("tool.video_verify.ok", "OK: train_video can train on this dataset") if report["ok"] else
                 msg("tool.video_verify.not_ok", "Not ready: fix what is listed above"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = verify(args)
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_report(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(run_light_tool(main))
