"""Small generated image sets for the captioning, tagging and dataset tool tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from backend.training.progress import parse_progress_line


def make_image(path: Path, size: tuple[int, int] = (48, 48), color: tuple[int, ...] = (255, 0, 0),
               mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def broken_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    return path


def progress_events(stdout: str) -> list[dict]:
    return [event for line in stdout.splitlines() if (event := parse_progress_line(line)) is not None]
