"""Where a video run's data is described: finetrainers v0.2's `--dataset_config` JSON, or v0.0.x's flags.

v0.2 (`--dataset_config training.json`):

    {"datasets": [{"data_root": "crush-smol", "dataset_type": "video", "id_token": "PIKA_CRUSH",
                   "video_resolution_buckets": [[49, 480, 832]], "reshape_mode": "bicubic"}]}

each entry a folder in one of finetrainers' layouts (prompt/video lists, same-name caption files, or a
`metadata.csv` / `metadata.json` / `metadata.jsonl` table whose `file_name` and `caption` columns name each
clip, as the Hugging Face folder datasets finetrainers reads). v0.0.x: `--data_root`, `--dataset_file`,
`--video_column`, `--caption_column`, `--id_token`, the bucket flags and `--video_reshape_mode` on the
command line, one dataset. finetrainers' interpolation names for reshape_mode (bicubic, bilinear, ...)
resize to the bucket without cropping, which is "none" here.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.data.video.errors import VideoDataError
from backend.messages import msg

RESHAPE_MODES = ("center", "random", "none")
METADATA_TABLES = ("metadata.csv", "metadata.jsonl", "metadata.json")


@dataclass(frozen=True)
class DataSource:
    data_root: str | None
    dataset_file: str | None
    video_column: str | None
    caption_column: str | None
    id_token: str | None
    video_buckets: tuple[str, ...]  # FxHxW tokens
    image_buckets: tuple[str, ...]  # HxW tokens
    reshape_mode: str


def reshape_mode(value: str | None) -> str:
    value = (value or "center").lower()
    return value if value in RESHAPE_MODES else "none"  # an interpolation name: resized, not cropped


def sources_from_args(args: argparse.Namespace) -> list[DataSource]:
    config = getattr(args, "dataset_config", None)
    if config and Path(config).suffix.lower() == ".json":
        return read_dataset_config(config)
    return [DataSource(
        args.data_root, args.dataset_file, args.video_column, args.caption_column, args.id_token,
        tuple(args.video_resolution_buckets or ()), tuple(args.image_resolution_buckets or ()),
        reshape_mode(args.video_reshape_mode),
    )]


def read_dataset_config(path: str | Path) -> list[DataSource]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VideoDataError(msg("video.config.missing", "--dataset_config {path} does not exist", path=path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VideoDataError(msg("video.config.not_json", "--dataset_config {path} is not valid JSON ({error})",
                                 path=path, error=exc)) from None
    entries = data.get("datasets") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise VideoDataError(msg("video.config.no_datasets", "--dataset_config {path} needs a \"datasets\" list of "
                                 "objects with a data_root each (finetrainers' training.json)", path=path))
    return [_source(path, index, entry) for index, entry in enumerate(entries)]


def _source(path: Path, index: int, entry: Any) -> DataSource:
    if not isinstance(entry, dict) or not entry.get("data_root"):
        raise VideoDataError(msg("video.config.entry", "--dataset_config {path}: datasets[{index}] needs a data_root",
                                 path=path, index=index))
    root = Path(entry["data_root"])
    if not root.is_absolute():
        root = path.parent / root if (path.parent / root).exists() else root
    table = next((root / name for name in METADATA_TABLES if (root / name).is_file()), None)
    return DataSource(
        str(root), str(table) if table else None, "file_name" if table else None, "caption" if table else None,
        entry.get("id_token"), _buckets(entry.get("video_resolution_buckets")),
        _buckets(entry.get("image_resolution_buckets")), reshape_mode(entry.get("reshape_mode")),
    )


def _buckets(value: Any) -> tuple[str, ...]:
    """[[49, 480, 832]] (JSON) -> ("49x480x832",), as the flags write them."""
    if not value:
        return ()
    return tuple("x".join(str(part) for part in bucket) if isinstance(bucket, list) else str(bucket)
                 for bucket in value)
