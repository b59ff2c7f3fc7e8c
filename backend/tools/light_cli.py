"""What the captioning, tagging and dataset tools' command lines share, without importing torch.

`backend/tools/tool_cli.py` (the LoRA tools' runner) imports torch for its precision table, and the
GUI process must never import torch. The caption editor library, `basic_caption`,
`prepare_dataset` and the image listing used by every captioner therefore raise `InputError`
from here, and every tool of this family runs through `run_light_tool`, which behaves like
`run_tool`: bad input prints one `error:` line (no traceback) and exits with status 2. It also
writes an `error` progress line, so the GUI shows the message without parsing stderr.

Progress uses the trainer's protocol (docs/progress-protocol.md, writer
`backend/training/progress.py`): `start` with the number of items, one `step` line per item
(`step`/`total` count items, `epoch` is always 1, plus the item's `path`; no loss fields), and
`end`. Readers ignore fields they do not know, so the GUI's progress bar works unchanged.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backend.training.progress import ProgressReporter


class InputError(ValueError):
    """Bad input (missing folder, no images, model not available offline): `error:` line, exit status 2."""


def run_light_tool(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run `main`; its return value (None means 0) is the exit status, an InputError gives status 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        status = main(argv)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        ProgressReporter().error(message=str(exc))
        return 2
    return status or 0


class ItemProgress:
    """`start`, one `step` per item and `end` lines for a tool that works through `total` items."""

    def __init__(self, total: int, tool: str, enabled: bool = True) -> None:
        self.total = total
        self.done = 0
        self._reporter = ProgressReporter(enabled=enabled)
        self._started = time.monotonic()
        self._reporter.emit("start", total=total, epochs=1, initial_step=0, tool=tool)

    def advance(self, path: str | Path, count: int = 1) -> None:
        self.done += count
        elapsed = time.monotonic() - self._started
        per_item = elapsed / self.done if self.done else None
        eta = per_item * max(0, self.total - self.done) if per_item is not None else None
        self._reporter.emit(
            "step", step=self.done, total=self.total, epoch=1, path=str(path),
            s_per_step=None if per_item is None else round(per_item, 4),
            eta_s=None if eta is None else round(eta, 1),
        )

    def end(self, output: str | Path | None = None) -> None:
        self._reporter.end(reason="completed", output=None if output is None else str(output), step=self.done)


@dataclass
class Summary:
    """What a tool did to each file: written, skipped (with why) and failed (with why)."""

    written: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, path: str | Path, why: str) -> None:
        self.skipped.append((str(path), why))

    def fail(self, path: str | Path, why: str) -> None:
        self.failed.append((str(path), why))

    def lines(self, verb: str = "written", limit: int = 20) -> list[str]:
        out = [f"{len(self.written)} {verb}, {len(self.skipped)} skipped, {len(self.failed)} failed"]
        for title, items in (("skipped", self.skipped), ("failed", self.failed)):
            for path, why in items[:limit]:
                out.append(f"  {title}: {path}: {why}")
            if len(items) > limit:
                out.append(f"  ... and {len(items) - limit} more {title}")
        return out

    def print(self, verb: str = "written") -> None:
        print("\n".join(self.lines(verb)), flush=True)
