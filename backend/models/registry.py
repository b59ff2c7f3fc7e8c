"""One specification object per family."""

from __future__ import annotations

from backend.models.sd import StableDiffusionSpec
from backend.models.sdxl import StableDiffusionXLSpec
from backend.models.spec import ModelSpecification

_SD = StableDiffusionSpec()
_SPECS: dict[str, ModelSpecification] = {"sd1": _SD, "sd2": _SD, "sdxl": StableDiffusionXLSpec()}


def get_spec(family: str) -> ModelSpecification:
    """The specification of ``sd1``, ``sd2`` or ``sdxl``."""
    try:
        return _SPECS[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; expected sd1, sd2 or sdxl") from None
