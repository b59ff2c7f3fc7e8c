"""How a family recognises its model files before anything is loaded (torch-free).

Each family package has a `detection.py` giving one `Detection`, which its declarations carry;
`backend.models.detect` asks every family's in turn (the shared mechanics: reading headers and
configs, metadata, the cross-attention width of U-Net-only files, naming foreign files, the flags
check). A detection may refuse a file it knows but cannot train (an SDXL refiner) by raising
`backend.models.errors.ModelMismatchError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Shapes = Mapping[str, tuple[int, ...]]  # tensor name -> shape, from a single file's header
JsonObject = Mapping[str, Any]


@dataclass(frozen=True)
class Recognised:
    family: str  # a declaration's name
    evidence: str  # what told it, a noun phrase in the user's language, for messages


@dataclass(frozen=True)
class FolderConfigs:
    """What a diffusers folder says about itself, read after every part was checked to be there."""

    index: JsonObject  # model_index.json
    unet: JsonObject
    text_encoders: tuple[JsonObject, ...]  # in the family's text-encoder folder order


def _accepts_every_folder(folder: Path, index: JsonObject) -> None:
    return None


def _knows_no_parts(shapes: Shapes, path: str) -> str | None:
    return None


def _holds_no_parts(shapes: Shapes) -> frozenset[str]:
    return frozenset()


@dataclass(frozen=True)
class Detection:
    # An original-layout single file: the family its keys show (None: not one of this package's).
    from_keys: Callable[[Shapes, str], Recognised | None]  # (shapes, path for messages)
    # A diffusers folder in this package's layout (`backend.families.of_pipeline_index`): which family.
    from_folder: Callable[[FolderConfigs], Recognised]
    # Refuses a pipeline folder of this layout that cannot be trained, before its parts are checked.
    refuse_folder: Callable[[Path, JsonObject], None] = _accepts_every_folder
    # A file holding one part of this family's model that is passed by a flag of its own (FLUX.1's --ae,
    # --clip_l, --t5xxl), given as the base model: the message saying what it is and where it goes.
    part_message: Callable[[Shapes, str], str | None] = _knows_no_parts
    # Which of the family's part flags (`FamilyDeclaration.part_flags`) a single file holds itself (SD 3.5: its
    # text encoders and VAE, or not): preflight asks for the others when `parts_may_be_inside`.
    parts_inside: Callable[[Shapes], frozenset[str]] = _holds_no_parts
