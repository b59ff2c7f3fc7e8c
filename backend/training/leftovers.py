"""Temporary files of interrupted saves, found and removed when the next run starts.

Every save is written under a temporary name and renamed when complete, so a killed run leaves its
half-written file under that temporary name. Only names this program makes are matched, each
exactly, and only for entries of the right kind (file or folder):

| leftover | written by |
|---|---|
| `.{name}.{8 hex}.tmp` file | `backend/atomic.py` (LoRA files, samples, configs, caches) |
| `.{name}.{8 chars}.tmp` / `.old` folder | `backend/models/saving.py` (fine-tuned models, diffusers folders) |
| `{name}-state.partial` / `-state.old` folder | `checkpoints.save_state` (training states) |
| `{stem}.partial-{pid}.{safetensors,ckpt,pt}` file | network saves of earlier versions |
| `.tmp{6 chars}` file starting with a safetensors header | the safetensors library's own temporary file |

An entry changed in the last `min_age_s` seconds is left alone and listed: it may be a save in
progress of another run writing into the same folder.

A run killed between the two renames that replace a folder (`X` -> `X.old`, then the new one -> `X`)
leaves no `X` at all: then the leftover is the only copy, and it is renamed back to `X` instead of
removed (a complete new state, `X.partial` with its train_state.json, before the previous `X.old`).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from backend.atomic import TEMP_FILE_PATTERN

TEMP_FOLDER_PATTERN = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.(tmp|old)")  # tempfile.mkdtemp's 8 characters
STATE_FOLDER_PATTERN = re.compile(r".+-state\.(partial|old)")
LEGACY_PARTIAL_PATTERN = re.compile(r".+\.partial-\d+\.(safetensors|ckpt|pt)")
SAFETENSORS_TEMP_PATTERN = re.compile(r"\.tmp[A-Za-z0-9]{6}")
MIN_AGE_S = 300.0
SAMPLE_FOLDER = "sample"  # sampling.SAMPLE_FOLDER, named here without importing the sampling stack


@dataclass
class Leftovers:
    removed: list[Path] = field(default_factory=list)
    recent: list[Path] = field(default_factory=list)  # matched but changed too recently to be sure
    restored: list[tuple[Path, Path]] = field(default_factory=list)  # (leftover, the name it got back)


STATE_RECORD = "train_state.json"  # checkpoints.TRAIN_STATE_FILE: written last, so its presence means complete


def _restorable(path: Path) -> tuple[Path, Path] | None:
    """(what to move, where) when `path` holds the only copy of a state or model folder whose final name is gone."""
    state = STATE_FOLDER_PATTERN.fullmatch(path.name)
    if state:
        final = path.with_name(path.name.rsplit(".", 1)[0])
        partial = final.with_name(final.name + ".partial")
        if final.exists() or not (path / STATE_RECORD).is_file():
            return None
        if path.name.endswith(".old") and (partial / STATE_RECORD).is_file():
            return None  # the complete new state (.partial) is restored instead
        return path, final
    folder = TEMP_FOLDER_PATTERN.fullmatch(path.name)
    if folder and path.name.endswith(".old"):  # models/saving.py keeps the replaced folder inside as <name>
        inner = path / folder.group("name")
        if inner.exists() and not path.with_name(inner.name).exists():
            return inner, path.with_name(inner.name)
    return None


def _looks_like_safetensors(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < 100_000_000


def is_leftover(path: Path) -> bool:
    """Whether `path` is the temporary file or folder of an interrupted save of ours."""
    name = path.name
    if path.is_symlink():
        return False
    if path.is_file():
        if TEMP_FILE_PATTERN.fullmatch(name) or LEGACY_PARTIAL_PATTERN.fullmatch(name):
            return True
        return bool(SAFETENSORS_TEMP_PATTERN.fullmatch(name)) and _looks_like_safetensors(path)
    if path.is_dir():
        return bool(TEMP_FOLDER_PATTERN.fullmatch(name) or STATE_FOLDER_PATTERN.fullmatch(name))
    return False


def _newest_change(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            for entry in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(root, entry)).st_mtime)
                except OSError:
                    continue
    return newest


def remove_leftovers(folders: list[Path], min_age_s: float = MIN_AGE_S, now: float | None = None) -> Leftovers:
    """Remove our leftovers directly inside each folder (not below); nothing else is touched."""
    found = Leftovers()
    now = time.time() if now is None else now
    for folder in folders:
        try:
            entries = sorted(folder.iterdir())
        except OSError:  # missing or unreadable: nothing of ours to clean there
            continue
        for path in entries:
            try:
                if not is_leftover(path):
                    continue
                if now - _newest_change(path) < min_age_s:
                    found.recent.append(path)
                    continue
                restore = _restorable(path)
                if restore is not None:
                    os.replace(*restore)
                    found.restored.append((path, restore[1]))
                    if restore[0] == path:
                        continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                found.removed.append(path)
            except OSError:
                continue  # vanished meanwhile, or not ours to remove: leave it
    return found


def leftover_folders(output_dir: str | os.PathLike[str]) -> list[Path]:
    """Where a run writes temporary files: the output folder and its sample folder."""
    base = Path(output_dir)
    return [base, base / SAMPLE_FOLDER]
