"""Atomic file writing: a reader never sees a half-written model, state or config.

Everything is written to a temporary file in the destination folder (same file system, so the
final `os.replace` is atomic), flushed and fsynced, then renamed over the final name. If the
writer raises, the temporary file is removed and any existing file under the final name is left
untouched. The temporary file is created with mode 0o666 so the process umask applies, exactly as
for a plain `open(path, "w")` (tempfile would create it 0o600).

Folders (a diffusers model, a tokenizer folder) are written the same way by `atomic_folder`: filled
under a temporary name beside the final one and renamed into place. A folder being replaced is first
moved aside into `.{name}.{8 hex}.old/{name}`, so a run killed between the two renames leaves the
previous folder where the next run's leftover cleanup (backend/training/leftovers.py) renames it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

# `.{name}.{8 hex digits}.tmp` (or `...tmp.{suffix}` for writers that choose the format by the suffix):
# hidden, unique and recognisable, so a crash (SIGKILL, power loss) leaves an obvious leftover that the
# next run can tell from the user's own files (backend/training/leftovers.py).
TEMP_FILE_PATTERN = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?")


def temp_name(path: Path, keep_suffix: bool = False) -> Path:
    """The temporary name a file is written under before it is renamed to `path`."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{path.suffix if keep_suffix else ''}")


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened this way on Windows.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _plain_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to (for libraries that want a file name); it becomes `path` on success.

    The writer must have closed the file when the block ends. `keep_suffix` ends the temporary name
    in `path`'s suffix, for writers that choose the format by it (network modules' `save_weights`).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_name(final, keep_suffix)
    try:
        yield temp
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        # Libraries differ (safetensors writes 0o600): every saved file gets the mode a plain open() gives.
        os.chmod(temp, _plain_file_mode())
        os.replace(temp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    _fsync_dir(final.parent)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing (`"w"` text or `"wb"` binary); it replaces `path` when the block succeeds."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as temp:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        if mode == "wb":
            f: IO[Any] = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        with f:  # closing flushes; atomic_path fsyncs before the rename
            yield f


def atomic_save_safetensors(
    tensors: Mapping[str, Any], path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> None:
    """`safetensors.torch.save_file` made atomic (metadata values must be strings, as the format requires)."""
    from safetensors.torch import save_file

    with atomic_path(path) as temp:
        save_file(dict(tensors), str(temp), metadata=dict(metadata) if metadata is not None else None)


def atomic_write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write `obj` as indented UTF-8 JSON (train_state.json, run snapshots)."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """`torch.save` made atomic (for .ckpt/.pt files and optimizer states)."""
    import torch

    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def _settle_files(folder: Path) -> None:
    """Every file under `folder` fsynced and given the mode a plain open() gives (safetensors and
    some libraries create 0o600 files, which other users and tools of the machine cannot read)."""
    mode = _plain_file_mode()
    for root, _, files in os.walk(folder):
        for name in files:
            file = Path(root, name)
            if file.is_symlink():
                continue
            with open(file, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(file, mode)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new, empty folder to fill; it replaces the folder (or file) `path` when the block succeeds.

    The folder is `.{name}.{8 hex digits}.tmp` beside `path` and is removed when the block raises, so
    `path` is never seen half-written. An existing `path` is moved into `.{name}.{8 hex}.old/` first
    and removed once the new folder is in place (see the module docstring for a kill in between)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_name(final)
    temp.mkdir()
    try:
        yield temp
        _settle_files(temp)
        if final.exists() or final.is_symlink():
            old = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.old")
            old.mkdir()
            os.replace(final, old / final.name)
            os.replace(temp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temp, final)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    _fsync_dir(final.parent)
