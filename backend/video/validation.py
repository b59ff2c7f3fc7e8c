"""finetrainers' validation videos as the loop's sample prompts: `--validation_dataset_file` (v0.2: a CSV,
JSON or JSONL table with `caption` and optional `height`, `width`, `num_frames`, `num_inference_steps`,
`frame_rate`) or `--validation_prompts` (v0.0.x: prompts split by `--validation_separator`, each optionally
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


def validation_prompts(args: argparse.Namespace, bucket: tuple[int, int, int]) -> list[SamplePrompt]:
    """Every validation video of the run as a SamplePrompt (`extra`: num_frames, fps)."""
    rows = _table_rows(args.validation_dataset_file) if args.validation_dataset_file else _flag_rows(args)
    prompts: list[SamplePrompt] = []
    base_seed = args.seed if args.seed is not None else 0
    for row in rows:
        frames = int(row.get("num_frames") or bucket[0])
        for copy in range(max(1, int(args.num_validation_videos or 1))):
            prompts.append(SamplePrompt(
                prompt=str(row["caption"]), index=len(prompts), width=int(row.get("width") or bucket[2]),
                height=int(row.get("height") or bucket[1]), seed=base_seed + copy,
                sample_steps=int(row.get("num_inference_steps") or DEFAULT_STEPS), scale=float(row.get("guidance") or 5.0),
                extra={"num_frames": frames, "fps": int(row.get("frame_rate") or DEFAULT_FPS)},
            ))
    return prompts


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
