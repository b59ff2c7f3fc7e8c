"""What every tool's command line shares, without importing torch: the error types, the runner,
progress lines and the per-file summary.

Every tool runs through `run_light_tool` (the LoRA tools through `tool_cli.run_tool`, the metadata
tools through `metadata_io.run_metadata_tool`, both this runner): bad input (`InputError`: a
missing or wrong file, a bad flag value; argparse's own errors) prints one `error:` line and exits
with status 2; a failure of the work on sound input (`ToolFailure`, or any unexpected exception,
which also prints its traceback) exits with status 1, as the trainer does (backend/training/
command.py). Either also writes an `error` progress line, so the GUI's tool runner shows the
message without parsing stderr. Tools check their arguments before they import anything heavy
(backend/tools/cli/arg_checks.py), so bad input answers in a fraction of a second.

The GUI process must never import torch, so the caption editor library, `basic_caption`,
`prepare_dataset` and the image listing used by every captioner raise `InputError` from here too.

Progress uses the trainer's protocol (docs/progress-protocol.md, writer
`backend/training/progress.py`): `start` with the number of items, one `step` line per item
(`step`/`total` count items, `epoch` is always 1, plus the item's `path`; no loss fields), and
`end`. Readers ignore fields they do not know, so the GUI's progress bar works unchanged.

What a tool prints for its user (errors, warnings, summaries, results) is a `backend.messages.msg`
text (ids `tool.*`), in the language of `KOHYA_LANGUAGE` (the GUI sets it for the tools it starts);
the `error:`/`warning:` prefixes stay as they are, for scripts that look for them.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backend.messages import msg
from backend.training.progress import ProgressReporter

BAD_INPUT = 2  # exit status for bad arguments or input files (as the trainer's invalid options)
FAILED = 1  # exit status for a failure of the work itself


class InputError(ValueError):
    """Bad input (missing file or folder, wrong kind of file, bad flag value): `error:` line, exit status 2."""


class ToolFailure(RuntimeError):
    """The work failed on input that looked sound (e.g. a numerically broken result); nothing was
    written under the output's name: `error:` line, exit status 1."""


def _loaded_class(module: str, name: str) -> type[BaseException] | None:
    # Looked up, not imported: these modules import torch, and a tool that never loaded one cannot
    # have raised its exception.
    cls = getattr(sys.modules.get(module), name, None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else None


def bad_input_types() -> tuple[type[BaseException], ...]:
    """The exceptions reported as bad input: ours, and the model layer's `ModelMismatchError` (a
    model that does not fit the command, or a damaged model file)."""
    found = (_loaded_class(m, "ModelMismatchError") for m in ("backend.models.errors", "backend.models.detect"))
    return (InputError, FileNotFoundError, *(cls for cls in found if cls is not None))


def failure_types() -> tuple[type[BaseException], ...]:
    """The exceptions reported as a failure without a traceback: ours, and the weight writers'
    refusal of NaN/inf weights (backend/finite_weights.py)."""
    refusal = _loaded_class("backend.finite_weights", "NonFiniteWeightsError")
    return (ToolFailure,) if refusal is None else (ToolFailure, refusal)


def run_light_tool(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run `main`; its return value (None means 0) is the exit status. Bad input gives status 2,
    a failure status 1, each with one `error:` line on stderr and an `error` progress line."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reporter = ProgressReporter()
    try:
        status = main(argv)
    except SystemExit as exit_:
        if exit_.code not in (0, None):  # argparse has printed the problem; tell a GUI reading progress lines too
            reporter.error(message=msg("tool.invalid_options", "invalid options (see the messages above)"))
        raise
    except KeyboardInterrupt:
        print(msg("tool.interrupted", "interrupted"), file=sys.stderr)
        return 130
    except Exception as exc:
        if isinstance(exc, failure_types()):
            return _report(reporter, exc, FAILED)
        if isinstance(exc, bad_input_types()):
            return _report(reporter, exc, BAD_INPUT)
        traceback.print_exc()
        reporter.error(message=f"{type(exc).__name__}: {exc}")
        return FAILED
    return status or 0


def _report(reporter: ProgressReporter, exc: BaseException, status: int) -> int:
    print(f"error: {exc}", file=sys.stderr)
    reporter.error(message=str(exc))
    return status


def warn(message: str) -> None:
    """One `warning:` line on stderr: something the user should know that does not stop the tool."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


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

    def lines(self, outcome: str = "written", limit: int = 20) -> list[str]:
        """The counts line and one line per skipped and failed file. `outcome`: what happened to the
        files that were not skipped: "written", "would_write" (a dry run), "placed" or "would_place"."""
        counts = {"done": len(self.written), "skipped": len(self.skipped), "failed": len(self.failed)}
        if outcome == "would_write":
            head = msg("tool.summary_would_write", "{done} would be written, {skipped} skipped, {failed} failed", **counts)
        elif outcome == "placed":
            head = msg("tool.summary_placed", "{done} placed, {skipped} skipped, {failed} failed", **counts)
        elif outcome == "would_place":
            head = msg("tool.summary_would_place", "{done} would be placed, {skipped} skipped, {failed} failed", **counts)
        else:
            head = msg("tool.summary_written", "{done} written, {skipped} skipped, {failed} failed", **counts)
        out = [head]
        for path, why in self.skipped[:limit]:
            out.append(msg("tool.summary_skipped_item", "  skipped: {path}: {why}", path=path, why=why))
        if len(self.skipped) > limit:
            out.append(msg("tool.summary_more_skipped", "  ... and {count} more skipped", count=len(self.skipped) - limit))
        for path, why in self.failed[:limit]:
            out.append(msg("tool.summary_failed_item", "  failed: {path}: {why}", path=path, why=why))
        if len(self.failed) > limit:
            out.append(msg("tool.summary_more_failed", "  ... and {count} more failed", count=len(self.failed) - limit))
        return out

    def print(self, outcome: str = "written") -> None:
        print("\n".join(self.lines(outcome)), flush=True)
