"""finetrainers' validation videos as the loop's sample prompts: `--validation_dataset_file` (v0.2: a CSV,
JSON or JSONL table with `caption` and optional `height`, `width`, `num_frames`, `num_inference_steps`,
`frame_rate`, and `image_path`: a first frame, for the families that start from one) or `--validation_prompts` (v0.0.x: prompts split by `--validation_separator`, each optionally
ending in `@@@FRAMESxHEIGHTxWIDTH`), each rendered `--num_validation_videos` times (seeds seed, seed + 1, ...)
every `--validation_steps` steps (and `--validation_epochs` epochs) as mp4 under output_dir/sample.
Sizes default to the largest training bucket; steps to finetrainers' 50."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from backend.data.video.errors import VideoDataError
from backend.messages import msg
from backend.training.sample_prompts import SamplePrompt

DEFAULT_STEPS = 50  # finetrainers' num_inference_steps
DEFAULT_FPS = 8


def validation_prompts(args: argparse.Namespace, bucket: tuple[int, int, int], image_to_video: bool = False,
                       label: str = "") -> list[SamplePrompt]:
    """Every validation video of the run as a SamplePrompt (`extra`: num_frames, fps, and `image`: the first
    frame of an image-to-video row, an existing file). `image_to_video`: the family (`label`) can start from
    an image; else a row with an `image_path` is refused rather than rendered without its image."""
    rows = _table_rows(args.validation_dataset_file) if args.validation_dataset_file else _flag_rows(args)
    prompts: list[SamplePrompt] = []
    base_seed = args.seed if args.seed is not None else 0
    for row in rows:
        frames = int(row.get("num_frames") or bucket[0])
        extra: dict[str, Any] = {"num_frames": frames, "fps": int(row.get("frame_rate") or DEFAULT_FPS)}
        if row.get("image_path"):
            extra["image"] = _first_frame(str(row["image_path"]), args.validation_dataset_file, image_to_video, label)
        for copy in range(max(1, int(args.num_validation_videos or 1))):
            prompts.append(SamplePrompt(
                prompt=str(row["caption"]), index=len(prompts), width=int(row.get("width") or bucket[2]),
                height=int(row.get("height") or bucket[1]), seed=base_seed + copy,
                sample_steps=int(row.get("num_inference_steps") or DEFAULT_STEPS), scale=float(row.get("guidance") or 5.0),
                extra=dict(extra),
            ))
    return prompts


# The validation table's columns read here; finetrainers' others (video_path for its control trainers, ...) are
# named by preflight as unused rather than dropped silently.
USED_COLUMNS = ("caption", "image_path", "height", "width", "num_frames", "num_inference_steps", "frame_rate",
                "guidance")


def unused_columns(args: argparse.Namespace) -> list[str]:
    """Columns of --validation_dataset_file that the validation videos do not use (empty: none, or no table)."""
    if not args.validation_dataset_file:
        return []
    found = {key for row in _table_rows(args.validation_dataset_file) for key in row}
    return sorted(found - set(USED_COLUMNS))


def _first_frame(image_path: str, table: str, image_to_video: bool, label: str) -> str:
    """A row's `image_path` as an existing file (relative: to the table's folder, as finetrainers' dataset files)."""
    if not image_to_video:
        raise VideoDataError(msg(
            "video.validation.no_i2v", "--validation_dataset_file {table}: a row has image_path {image}, but {label} "
            "renders videos from text only (no image-to-video here): remove image_path, or train a model that "
            "starts from an image (LTX-Video)", table=table, image=image_path, label=label,
        ))
    path = Path(image_path)
    if not path.is_absolute():
        path = Path(table).parent / path
    if not path.is_file():
        raise VideoDataError(msg("video.validation.image_missing", "--validation_dataset_file {table}: image_path "
                                 "{image} does not exist", table=table, image=path))
    return str(path)


def _flag_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    if not args.validation_prompts:
        return []
    rows = []
    for item in str(args.validation_prompts).split(args.validation_separator or ":::"):
        caption, _, size = item.partition("@@@")
        row: dict[str, Any] = {"caption": caption.strip()}
        if size.strip():
            try:
                row["num_frames"], row["height"], row["width"] = (int(v) for v in size.strip().split("x"))
            except ValueError:
                raise VideoDataError(msg(
                    "video.validation.size", "--validation_prompts: {size} is not FRAMESxHEIGHTxWIDTH (e.g. "
                    "49x512x768)", size=size.strip(),
                )) from None
        if row["caption"]:
            rows.append(row)
    return rows


def _table_rows(path: str) -> list[dict[str, Any]]:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        if file.suffix.lower() == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
        elif file.suffix.lower() == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
            rows = data.get("data", []) if isinstance(data, dict) else data
    except (OSError, ValueError) as exc:
        raise VideoDataError(msg("video.validation.unreadable", "--validation_dataset_file {path} cannot be read "
                                 "({error})", path=path, error=exc)) from None
    if not rows or any(not isinstance(r, dict) or not r.get("caption") for r in rows):
        raise VideoDataError(msg("video.validation.caption", "--validation_dataset_file {path}: every entry needs a "
                                 "caption (finetrainers' validation format)", path=path))
    return rows
