"""The torch side of the registry: a family's `ModelFamily` by name, or by the modules it loaded."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from backend.families import DECLARATIONS, declaration

if TYPE_CHECKING:
    from torch import nn

    from backend.families.seam import ModelFamily
    from backend.models.spec import ModelSpecification


def family(name: str) -> ModelFamily:
    """The family of `name` ("sd1", "sd2", "sdxl"; `backend.families.names()`)."""
    return importlib.import_module(declaration(name).implementation).FAMILY


def get_spec(name: str) -> ModelSpecification:
    return family(name).spec


def all_families() -> list[ModelFamily]:
    """Each implementation once, in the declarations' order."""
    found: list[ModelFamily] = []
    for decl in DECLARATIONS:
        each = family(decl.name)
        if each not in found:
            found.append(each)
    return found


def family_of_modules(unet: nn.Module | None, text_encoder_count: int) -> ModelFamily:
    """The family whose denoiser (and number of text encoders) these are."""
    for each in all_families():
        if each.claims(unet):
            return each
    for each in all_families():
        if each.recognises(unet, text_encoder_count):
            return each
    raise ValueError(f"no model family has a {type(unet).__name__} with {text_encoder_count} text encoder(s)")
