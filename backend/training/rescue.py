"""Where a save goes when the output folder refuses it: no finished training is lost to a full disk.

Preflight checks that the output folder can be written and has room, but a disk can fill up or a
mount go read-only during a run of hours. When a save fails for such a reason, the trainer writes
the same file into a rescue folder instead and from then on saves there, says so in the log and
the progress stream, and ends with an error that names every file written there.

The rescue folder is the first of these that can be written and has room for the save:
`~/kohya_rescued/<output_name>-<time>` (the user's home, kept across reboots), then the same under
the system's temporary folder.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from backend.messages import msg
from backend.training.output_space import existing_ancestor, folder_problem, gib
from backend.training.run_errors import OutputNotWritable

logger = logging.getLogger(__name__)

RESCUE_FOLDER = "kohya_rescued"


def is_write_failure(exc: BaseException) -> bool:
    """Whether a save failed because the file could not be written (as opposed to a bug).

    The libraries report it differently: OSError (Python writes), SafetensorError "I/O error"
    (safetensors' Rust writer), RuntimeError from torch.save's zip writer.
    """
    if isinstance(exc, OSError):
        return True
    text = str(exc)
    if type(exc).__name__ == "SafetensorError":
        return "I/O error" in text or "os error" in text
    return isinstance(exc, RuntimeError) and any(
        marker in text for marker in ("PytorchStreamWriter", "inline_container", "file write failed")
    )


DISK_FULL = "run.write_failure.disk_full"  # the id of failure_reason's "disk full", which changes the hint


def _disk_full() -> str:
    return msg("run.write_failure.disk_full", "the disk is full (no space left on device)")


def failure_reason(exc: BaseException) -> str:
    """What went wrong, in words: 'no space left on device', 'permission denied', ..."""
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _disk_full()
        if exc.errno in (errno.EACCES, errno.EPERM):
            return msg("run.write_failure.permission_denied", "permission denied")
        if exc.errno == errno.EROFS:
            return msg("run.write_failure.read_only", "read-only file system")
        if exc.errno in (errno.ENOTDIR, errno.EEXIST):
            if exc.filename:
                return msg("run.write_failure.in_the_way", "{path} is in the way: a file where a folder is needed",
                           path=exc.filename)
            return msg("run.write_failure.a_file_in_the_way", "a file is in the way where a folder is needed")
        return str(exc)
    text = str(exc)
    if "os error 28" in text or "No space left" in text:
        return _disk_full()
    text = text.split("I/O error: ", 1)[-1]  # safetensors: "Error while serializing: I/O error: <what>"
    return text.splitlines()[0] if text else type(exc).__name__


def rescue_candidates(output_name: str) -> list[Path]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    leaf = f"{output_name}-{stamp}"
    return [Path.home() / RESCUE_FOLDER / leaf, Path(tempfile.gettempdir()) / RESCUE_FOLDER / leaf]


def choose_rescue_folder(output_name: str, needed_bytes: int, avoid: Path,
                         tried: frozenset[Path] = frozenset()) -> tuple[Path | None, list[str]]:
    """(the folder to save into, or None; why each refused candidate was refused); `tried`: candidates
    whose parent folder failed already."""
    refused: list[str] = []
    for candidate in rescue_candidates(output_name):
        if candidate.parent in tried:
            continue
        if avoid.absolute() in (candidate.absolute(), *candidate.absolute().parents):
            refused.append(msg("run.rescue.inside_failing", "{folder}: inside the failing folder", folder=candidate))
            continue
        problem = folder_problem(msg("run.rescue.label", "the rescue folder"), candidate)
        if problem:
            refused.append(problem)
            continue
        free = shutil.disk_usage(existing_ancestor(candidate)).free
        if free < needed_bytes:
            refused.append(msg("run.rescue.too_little_space", "{folder}: only {free} free, {needed} needed",
                               folder=candidate, free=gib(free), needed=gib(needed_bytes)))
            continue
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            refused.append(f"{candidate}: {failure_reason(exc)}")
            continue
        return candidate, refused
    return None, refused


def output_hint(reason: str) -> str:
    if getattr(reason, "id", None) == DISK_FULL:  # a Message from failure_reason, in whatever language
        return msg("run.rescue.hint_full", "Free space on that disk (or choose an --output_dir on another disk) "
                   "before the next run.")
    return msg("run.rescue.hint_writable", "Make the folder writable, or choose another --output_dir, before the "
               "next run.")


class RescuingWriter:
    """Runs a run's saves; once the output folder refuses one, that and every later save go to a rescue folder.

    `moved(folder)` is called when the saves move, so the run's names (and pruning, samples) follow.
    """

    def __init__(self, output_dir: Path, output_name: str, moved: Callable[[Path], None]) -> None:
        self.output_dir = output_dir
        self.output_name = output_name
        self.moved = moved
        self.folder: Path | None = None  # the rescue folder in use
        self.reason = ""  # why the output folder refused
        self.rescued: list[Path] = []  # everything written into rescue folders

    def write(self, path: Path, write: Callable[[Path], object], size: int, step: int) -> Path:
        """write(path); when the file system refuses it, write(the same name in a rescue folder) instead."""
        try:
            write(path)
            if self.folder is not None and path.parent == self.folder:
                self.rescued.append(path)
            return path
        except Exception as exc:  # only failures to write are rescued; others go on
            if not is_write_failure(exc):
                raise
            reason = failure_reason(exc)
        logger.error(msg("run.rescue.save_failed", "could not save {path}: {reason}", path=path, reason=reason))
        failed: dict[Path, str] = {}  # rescue folders that refused the file too, and why
        while True:
            folder = self._rescue_folder(path, reason, size, failed, step)
            target = folder / path.name
            try:
                write(target)
                break
            except Exception as exc:
                if not is_write_failure(exc):
                    raise
                failed[folder] = failure_reason(exc)
                logger.error(msg("run.rescue.copy_failed", "could not save the rescue copy {path} either: {reason}",
                                 path=target, reason=failed[folder]))
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty
                if self.folder == folder:
                    self.folder = None
        self.rescued.append(target)
        logger.error(msg("run.rescue.saved_instead", "saved {path} instead (into the rescue folder)", path=target))
        return target

    def _rescue_folder(self, path: Path, reason: str, size: int, failed: dict[Path, str], step: int) -> Path:
        if self.folder is not None and self.folder != path.parent and self.folder not in failed:
            return self.folder
        tried = frozenset(folder.parent for folder in failed)
        folder, refused = choose_rescue_folder(self.output_name, size, self.output_dir, tried)
        if folder is None:
            refused = [f"{failed_folder}: {why}" for failed_folder, why in failed.items()] + refused
            raise OutputNotWritable(
                msg("run.rescue.lost", "could not save {path} ({reason}), and no rescue folder could take it "
                    "({refused}); the weights of this save are lost", path=path, reason=reason,
                    refused="; ".join(refused)),
                hint=output_hint(reason), step=step, output=str(self.rescued[-1]) if self.rescued else None,
            )
        logger.error(msg("run.rescue.moving", "--output_dir {output_dir} cannot be written ({reason}): this and every "
                         "later save of the run goes to {folder}", output_dir=self.output_dir, reason=reason,
                         folder=folder))
        self.use(folder, reason)
        return folder

    def use(self, folder: Path, reason: str = "") -> None:
        """Save into `folder` from now on (also when another process chose it)."""
        self.folder, self.reason = folder, reason or self.reason
        self.moved(folder)

    def finished_error(self, final: Path, step: int) -> OutputNotWritable | None:
        """The error a run ends with when any of its files went to a rescue folder (None if none did)."""
        if not self.rescued:
            return None
        kept = list(dict.fromkeys(path for path in self.rescued if path.exists()))  # pruned ones are gone
        folders = {path.parent for path in kept}
        if len(folders) == 1:
            message = msg("run.rescue.finished", "could not write to --output_dir {output_dir} ({reason}). The run "
                          "finished and its files were saved to {folder} instead: {files}.",
                          output_dir=self.output_dir, reason=self.reason, folder=folders.pop(),
                          files=", ".join(path.name for path in kept))
        else:
            message = msg("run.rescue.finished_several", "could not write to --output_dir {output_dir} ({reason}). "
                          "The run finished and its files were saved to rescue folders instead: {files}.",
                          output_dir=self.output_dir, reason=self.reason, files=", ".join(map(str, kept)))
        hint = msg("run.rescue.move_them", "Move them where you want them.") + " " + output_hint(self.reason)
        return OutputNotWritable(message, hint=hint, output=str(final), step=step)
