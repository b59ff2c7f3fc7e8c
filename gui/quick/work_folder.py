"""The training folder Quick LoRA builds from the source folder, which it never writes into.

    <work>/quick_lora.json                    which source folder this work folder belongs to, and its trigger word
    <work>/img/<repeats>_<trigger> <class>/   hard links to the source images (copies across drives) and `.txt`
                                              captions: the source's with the trigger word first, or the captioner's
    <work>/sample_prompts.txt                 the sample prompts (with the trigger word)
    <work>/model/                             the LoRA files and their samples (`sample/`)

Hard links cost no space and the trainer only reads images; captions are written as new files (atomically), so a
link's source is never changed. Building again (other repeats, a changed source caption) renames the one image
folder and refreshes it; captions the captioner wrote for images without one are kept. A new trigger word replaces
the former one in every caption (the marker remembers which it was).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from backend.atomic import atomic_path, atomic_write_json
from backend.tools.dataset.caption_files import caption_path, is_image, read_text, write_text

MARKER = "quick_lora.json"
CAPTION = ".txt"


class WorkFolderError(ValueError):
    """The work folder cannot be used; the message (`key`, `fields` for the page's catalogue) says why."""

    def __init__(self, key: str, **fields: object) -> None:
        super().__init__(key)
        self.key, self.fields = key, fields


@dataclass(frozen=True)
class Layout:
    work: Path
    image_dir: Path
    output_dir: Path
    prompts: Path
    linked: int  # images placed by a hard link this time
    copied: int  # images copied this time (another drive)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_work_folder(work: Path, source: Path) -> None:
    """Raise WorkFolderError unless `work` can be Quick LoRA's folder for `source`: outside it, and new, empty or
    one Quick LoRA made for that source."""
    work, source = work.resolve(), source.resolve()
    if _inside(work, source):
        raise WorkFolderError("ui.quick.err.work_inside_source", work=work, source=source)
    if _inside(source, work):
        raise WorkFolderError("ui.quick.err.source_inside_work", work=work, source=source)
    if work.exists() and not work.is_dir():
        raise WorkFolderError("ui.quick.err.work_is_file", work=work)
    marker = work / MARKER
    if marker.is_file():
        recorded = _recorded(work).get("source")
        if recorded != str(source):
            raise WorkFolderError("ui.quick.err.work_other_source", work=work, source=recorded or "?")
    elif work.is_dir() and any(work.iterdir()):
        raise WorkFolderError("ui.quick.err.work_not_empty", work=work)


def _recorded(work: Path) -> dict[str, object]:
    """The work folder's marker ({} when there is none or it cannot be read)."""
    try:
        recorded = json.loads((work / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def folder_name(repeats: int, trigger: str, class_word: str) -> str:
    return f"{repeats}_{trigger} {class_word}".strip()


def trigger_first(caption: str, trigger: str, former: str | None = None) -> str:
    """The caption with the trigger word as its first comma-separated part (once), so `keep_tokens 1` keeps it;
    the `former` trigger word, if any, left out."""
    parts = [part.strip() for part in caption.split(",")]
    rest = [part for part in parts if part and part not in (trigger, former)]
    return ", ".join([trigger, *rest])


def _place(source: Path, destination: Path) -> str:
    """A hard link, else (another drive, a file system without links) a copy; "linked" or "copied"."""
    try:
        os.link(source, destination)
        return "linked"
    except OSError:
        with atomic_path(destination) as temp:
            shutil.copyfile(source, temp)
        return "copied"


def _image_dir(images_root: Path, name: str) -> Path:
    """The one image folder, renamed to `name` when an earlier build named it otherwise."""
    target = images_root / name
    earlier = [entry for entry in images_root.iterdir() if entry.is_dir() and entry != target]
    if earlier and not target.exists():
        earlier[0].rename(target)
    target.mkdir(parents=True, exist_ok=True)
    return target


def build_training_folder(
    work: Path, source: Path, images: Iterable[Path], captions: Mapping[Path, str], trigger: str, class_word: str,
    repeats: int,
) -> Layout:  # fmt: skip
    """Build (or bring up to date) the training folder; nothing is written in `source`."""
    check_work_folder(work, source)
    work.mkdir(parents=True, exist_ok=True)
    former = _recorded(work).get("trigger")
    former = former if isinstance(former, str) and former != trigger else None
    # Recorded as the former one until every caption has the new word: a build that stops half way replaces the
    # rest next time.
    atomic_write_json({"source": str(source.resolve()), "trigger": former or trigger}, work / MARKER)
    (work / "img").mkdir(exist_ok=True)
    image_dir = _image_dir(work / "img", folder_name(repeats, trigger, class_word))
    wanted = {image.name: image for image in images}
    for (
        stale
    ) in image_dir.iterdir():  # images no longer in the source (or now left out): out of the training set
        if is_image(stale) and stale.name not in wanted:
            stale.unlink()
    counts = {"linked": 0, "copied": 0}
    for name, image in wanted.items():
        destination = image_dir / name
        if not destination.exists():
            counts[_place(image, destination)] += 1
        if image in captions:  # the source's caption is the truth; the captioner's are kept for the others
            text = trigger_first(captions[image], trigger)
            target = caption_path(destination, CAPTION)
            if read_text(target) != text:
                write_text(target, text)
    if former:
        put_trigger_first(image_dir, trigger, former)
        atomic_write_json({"source": str(source.resolve()), "trigger": trigger}, work / MARKER)
    output_dir = work / "model"
    output_dir.mkdir(exist_ok=True)
    return Layout(
        work, image_dir, output_dir, work / "sample_prompts.txt", counts["linked"], counts["copied"]
    )


def put_trigger_first(image_dir: Path, trigger: str, former: str | None = None) -> int:
    """Every caption of the training folder with the trigger word first (the captioner's too) and the `former`
    one left out; how many changed."""
    changed = 0
    for image in sorted(path for path in image_dir.iterdir() if is_image(path)):
        target = caption_path(image, CAPTION)
        text = read_text(target)
        if text is not None and trigger_first(text, trigger, former) != text:
            write_text(target, trigger_first(text, trigger, former))
            changed += 1
    return changed


def uncaptioned(image_dir: Path) -> list[Path]:
    return sorted(p for p in image_dir.iterdir() if is_image(p) and not read_text(caption_path(p, CAPTION)))
