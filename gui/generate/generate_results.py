"""What a finished generate run made, for the page's gallery and grid image: read from the run's end (the tool's
`end` progress line names the grid, or the output folder when there is none) and the files the tool writes
(`<stamp>-NNNN.png`, a grid's cells `<stamp>-xNN-yNN.png` (the next prompts' grids `<stamp>-gN-xNN-yNN.png`),
`<stamp>-grid.png` with `<stamp>-grid.json`: backend/tools/generation/plan.py `image_name`). Pure: paths in, paths
out."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gui.runs.sample_videos import servable_copy

_STAMP = r"\d{8}-\d{6}"
_IMAGE = re.compile(rf"^{_STAMP}-\d{{4}}\.png$")
_CELL = re.compile(r"^-(?:g(\d+)-)?x(\d+)-y(\d+)\.png$")  # after the stamp


@dataclass(frozen=True)
class GenerateResults:
    images: list[str]  # the single images or the grid's cells, in the order they were planned
    grid: str | None = None  # the (first) grid image; its JSON lies beside it
    grids: tuple[str, ...] = ()  # every grid of the run (one per prompt), the first first


def run_results(snapshot: Mapping[str, Any]) -> GenerateResults:
    """The images of the runner's last run when it finished (nothing otherwise)."""
    output = snapshot.get("output")
    if snapshot.get("status") != "finished" or not output:
        return GenerateResults([])
    path = Path(output)
    if path.is_file() and path.name.endswith("-grid.png"):
        stamp = path.name[: -len("-grid.png")]
        more = path.parent.glob(f"{stamp}-grid-*.png")  # the next prompts' grids: -2, -3, ...
        grids = [
            path,
            *sorted(more, key=lambda p: int(p.stem.rsplit("-", 1)[-1]) if p.stem[-1].isdigit() else 0),
        ]
        places = {p: _CELL.match(p.name[len(stamp) :]) for p in path.parent.glob(f"{stamp}-*.png")}
        # grid by grid, row by row, as the grids show them
        order = {p: (int(m.group(1) or 1), int(m.group(3)), int(m.group(2))) for p, m in places.items() if m}
        cells = [str(p) for p in sorted(order, key=order.__getitem__)]
        return GenerateResults(cells, str(path), tuple(str(p) for p in grids))
    if not path.is_dir():
        return GenerateResults([])
    started = float(snapshot.get("started_at") or 0) - 2  # the tool's stamp is its own start's second
    images = sorted(str(p) for p in path.iterdir() if _IMAGE.match(p.name) and p.stat().st_mtime >= started)
    return GenerateResults(images)


def servable(path: str, roots: Sequence[Path] | None = None, folder: Path | None = None) -> str | None:
    """`path` where Gradio serves it: as it is under the working folder or the temp folder (`roots`), else a copy
    under the temp folder (Gradio refuses to send other files; an output folder can be anywhere); None when it
    cannot be read."""
    roots = roots if roots is not None else (Path.cwd(), Path(tempfile.gettempdir()))
    resolved = Path(path).resolve()
    if any(resolved.is_relative_to(root.resolve()) for root in roots):
        return path
    return servable_copy(path, folder or Path(tempfile.gettempdir()) / "kohya_gui_generated")
