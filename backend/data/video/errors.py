"""The video data layer's exceptions and the problem record its scan collects.

Torch-free. Every message says what is wrong, where, and what to do, because these errors reach
people who only see the trainer's log.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.data.errors import DatasetError
from backend.messages import msg


class VideoDataError(DatasetError):
    """A video dataset that cannot be trained on as configured; the message names the fix."""


class VideoDecodeError(VideoDataError):
    """One video or image file that cannot be read; `path` and `reason` stay available to callers."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(msg(
            "video.decode.failed",
            "{path}: cannot be read as a video ({reason}): play it in a video player to check it, re-encode it "
            "(e.g. ffmpeg -i in.mp4 -c:v libx264 -pix_fmt yuv420p out.mp4), or remove it from the dataset",
            path=self.path, reason=reason,
        ))  # fmt: skip


@dataclass(frozen=True)
class ClipProblem:
    """One file the scan cannot train on: what is wrong and what to do about it."""

    path: str
    problem: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "problem": self.problem, "fix": self.fix}


def collected(header: str, lines: list[str], limit: int = 20) -> str:
    """`header` and up to `limit` indented lines, then how many more there are."""
    shown = [f"  {line}" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append("  " + msg("video.more_lines", "... and {count} more", count=len(lines) - limit))
    return "\n".join([header, *shown])


def format_problems(problems: list[ClipProblem], limit: int = 20) -> str:
    """All problems as one report: a count, then `path: problem -> fix` per file."""
    header = msg("video.unusable_files", "{count} file(s) in the video dataset cannot be used:", count=len(problems))
    return collected(header, [f"{p.path}: {p.problem} -> {p.fix}" for p in problems], limit)
