"""Planning a DreamBooth-style training folder: folder names, balanced repeats, file operations. No torch.

The trainer's folder convention (backend/data/discovery.py): `--train_data_dir` holds folders
named `<repeats>_<instance> <class>` (e.g. `10_sks dog`), `--reg_data_dir` folders named
`<repeats>_<class>`. Everything here is a plan first (`Placement`s: source file -> destination),
so the GUI can show it, and `place_files` carries it out without ever replacing an existing file.

Balancing: a concept with few images would be seen less often per epoch than one with many.
`balanced_repeats(counts, target)` gives each concept `round(target / images)` repeats (at least
1), so every concept contributes about `target` images per epoch (images x repeats). The target
is in images per epoch per concept, the quantity the trainer's step count is built from.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from backend.atomic import atomic_path
from backend.messages import msg
from backend.tools.cli.arg_checks import one_line_name
from backend.tools.cli.light_cli import InputError
from backend.tools.dataset.caption_files import caption_path, list_images

# Caption files that travel with an image (besides the one named by --caption_extension).
SIDECAR_EXTENSIONS = (".txt", ".caption")
_BAD_NAME = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


class LinkMode(str, Enum):
    COPY = "copy"
    HARDLINK = "hardlink"
    SYMLINK = "symlink"


@dataclass(frozen=True)
class Concept:
    source: Path
    tokens: str  # "<instance> <class>" for training images, "<class>" for regularization images
    is_reg: bool = False


@dataclass(frozen=True)
class ConceptPlan:
    concept: Concept
    images: tuple[Path, ...]
    repeats: int

    @property
    def folder_name(self) -> str:
        return f"{self.repeats}_{self.concept.tokens}"

    @property
    def images_per_epoch(self) -> int:
        return self.repeats * len(self.images)


@dataclass(frozen=True)
class Placement:
    source: Path
    destination: Path


def check_tokens(tokens: str, what: str) -> str:
    one_line_name(tokens, what)
    tokens = " ".join(tokens.split())
    if not tokens:
        raise InputError(msg("tool.tokens_empty", "{what} is empty: give the words the folder name should carry, e.g. "
                             "'sks dog'", what=what))
    if _BAD_NAME.search(tokens) or tokens.endswith("."):
        raise InputError(msg("tool.tokens_bad_characters", "{what} {tokens} cannot be part of a folder name: remove "
                             "characters such as / \\ : * ? \" < > |", what=what, tokens=repr(tokens)))
    return tokens


def balanced_repeats(image_counts: Sequence[int], target: int) -> list[int]:
    """Repeats per concept so that each gives about `target` images per epoch (at least 1 repeat)."""
    if target < 1:
        raise InputError(msg("tool.balance_below_one", "--balance must be 1 or more images per epoch, got {value}",
                             value=target))
    return [max(1, round(target / count)) if count else 1 for count in image_counts]


def plan_concepts(concepts: Sequence[Concept], repeats: int, reg_repeats: int, balance: int | None) -> list[ConceptPlan]:
    """Images and repeats of every concept; every source is checked before anything is written."""
    if repeats < 1 or reg_repeats < 1:
        raise InputError(msg("tool.repeats_below_one", "--repeats and --reg_repeats must be 1 or more"))
    listed = [(c, tuple(list_images(c.source, what=_folder_role(c)))) for c in concepts]
    names = [f"{'reg' if c.is_reg else 'img'}/{c.tokens}" for c in concepts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(msg("tool.concepts_share_folder", "two concepts would share the folder {folder}: give them "
                             "different tokens", folder=repr(duplicates[0])))
    train = [(c, images) for c, images in listed if not c.is_reg]
    train_repeats = balanced_repeats([len(i) for _, i in train], balance) if balance else [repeats] * len(train)
    chosen = dict(zip((c for c, _ in train), train_repeats, strict=True))
    return [ConceptPlan(c, images, reg_repeats if c.is_reg else chosen[c]) for c, images in listed]


def _folder_role(concept: Concept) -> str:
    if concept.is_reg:
        return msg("tool.what_reg_folder", "regularization image folder")
    return msg("tool.what_concept_folder", "concept folder")


def already_there(problem: str | None) -> bool:
    """Whether `place_file`'s answer means the destination exists (skipped, not failed)."""
    return getattr(problem, "id", None) == "tool.place_exists"


def sidecars(image: Path, extensions: Sequence[str]) -> list[Path]:
    return [p for p in dict.fromkeys(caption_path(image, ext) for ext in extensions) if p.is_file()]


def plan_placements(plan: ConceptPlan, folder: Path, caption_extensions: Sequence[str],
                    subfolders: dict[Path, str] | None = None) -> list[Placement]:
    """Each image of `plan` (and its caption files) into `folder`, or into `folder/<subfolder>` when
    `subfolders` maps the image to one (aspect-ratio groups)."""
    placements = []
    for image in plan.images:
        target = folder / subfolders[image] if subfolders else folder
        for source in (image, *sidecars(image, caption_extensions)):
            placements.append(Placement(source, target / source.name))
    return placements


def place_file(placement: Placement, mode: LinkMode) -> str | None:
    """Copy or link one file; returns why it was not placed, or None. Never replaces a file."""
    source, destination = placement.source, placement.destination
    if destination.exists() or destination.is_symlink():
        return msg("tool.place_exists", "exists in the destination (never replaced)")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        if mode is LinkMode.COPY:
            with atomic_path(destination) as temp:
                shutil.copyfile(source, temp)
            shutil.copystat(source, destination)
        elif mode is LinkMode.HARDLINK:
            os.link(source, destination)
        else:
            os.symlink(source.resolve(), destination)
    except OSError as exc:
        error = exc.strerror or exc
        if mode is LinkMode.HARDLINK:
            return msg("tool.place_hardlink_failed", "{error} (hard links need source and destination on the same "
                       "drive: use --link copy)", error=error)
        if mode is LinkMode.SYMLINK:
            return msg("tool.place_symlink_failed", "{error} (on Windows symbolic links need Developer Mode or admin "
                       "rights: use --link copy)", error=error)
        return str(error)
    return None
