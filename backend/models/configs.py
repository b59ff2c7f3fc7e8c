"""Architecture configurations of the supported families, without weights.

The shipped JSON files under ``configs/<arch>/`` are the diffusers-layout configs of the real models
(SD 1.5, SD 2.x 512 epsilon, SD 2.x 768 v-prediction, SDXL base). A single-file checkpoint carries
no architecture description, so loading one uses these files; files that we write ourselves also
carry their exact configs in metadata (see ``saving.py``), which is how tiny test models load.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Family = Literal["sd1", "sd2", "sdxl"]
FAMILIES: tuple[Family, ...] = ("sd1", "sd2", "sdxl")
ARCHS = ("sd15", "sd2", "sd2-v", "sdxl")

CONFIG_ROOT = Path(__file__).parent / "configs"

# Component folder names of a diffusers pipeline, per family, in text-encoder order.
TEXT_ENCODER_FOLDERS: dict[str, tuple[str, ...]] = {
    "sd1": ("text_encoder",),
    "sd2": ("text_encoder",),
    "sdxl": ("text_encoder", "text_encoder_2"),
}
TOKENIZER_FOLDERS: dict[str, tuple[str, ...]] = {
    "sd1": ("tokenizer",),
    "sd2": ("tokenizer",),
    "sdxl": ("tokenizer", "tokenizer_2"),
}

FAMILY_LABELS: dict[str, str] = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}


def family_of_arch(arch: str) -> Family:
    return {"sd15": "sd1", "sd2": "sd2", "sd2-v": "sd2", "sdxl": "sdxl"}[arch]  # type: ignore[return-value]


def arch_for(family: str, v_prediction: bool) -> str:
    """The shipped config set to use for a family (SDXL v-pred reuses the SDXL set)."""
    if family == "sd1":
        return "sd15"
    if family == "sd2":
        return "sd2-v" if v_prediction else "sd2"
    return "sdxl"


@dataclass
class ArchConfigs:
    """Diffusers configs of every component of one model."""

    family: Family
    unet: dict[str, Any]
    vae: dict[str, Any]
    text_encoders: list[dict[str, Any]]
    scheduler: dict[str, Any]
    model_index: dict[str, Any] = field(default_factory=dict)

    @property
    def prediction_type(self) -> str:
        return str(self.scheduler.get("prediction_type", "epsilon"))

    def with_prediction_type(self, prediction_type: str) -> ArchConfigs:
        new = copy.deepcopy(self)
        new.scheduler["prediction_type"] = prediction_type
        return new

    def to_json(self) -> str:
        return json.dumps(
            {
                "family": self.family,
                "unet": self.unet,
                "vae": self.vae,
                "text_encoders": self.text_encoders,
                "scheduler": self.scheduler,
                "model_index": self.model_index,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> ArchConfigs:
        data = json.loads(text)
        return cls(
            family=data["family"],
            unet=data["unet"],
            vae=data["vae"],
            text_encoders=data["text_encoders"],
            scheduler=data["scheduler"],
            model_index=data.get("model_index", {}),
        )


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_diffusers_configs(folder: str | Path, family: Family) -> ArchConfigs:
    """Read the component configs of a diffusers pipeline folder (ours or a real one)."""
    folder = Path(folder)
    return ArchConfigs(
        family=family,
        unet=_read_json(folder / "unet" / "config.json"),
        vae=_read_json(folder / "vae" / "config.json"),
        text_encoders=[_read_json(folder / name / "config.json") for name in TEXT_ENCODER_FOLDERS[family]],
        scheduler=_read_json(folder / "scheduler" / "scheduler_config.json"),
        model_index=_read_json(folder / "model_index.json"),
    )


def load_arch_configs(arch: str) -> ArchConfigs:
    """The shipped configs of a real architecture: ``sd15``, ``sd2``, ``sd2-v`` or ``sdxl``."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    return read_diffusers_configs(CONFIG_ROOT / arch, family_of_arch(arch))
