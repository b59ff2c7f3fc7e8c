"""Architecture configurations of the supported families, without weights.

Each family ships the diffusers-layout configs of its real models in its package
(``backend/families/<package>/configs/<config set>/``: SD 1.5, SD 2.x 512 epsilon, SD 2.x 768
v-prediction, SDXL base), found through its declaration. A single-file checkpoint carries no
architecture description, so loading one uses these files; files that we write ourselves also carry
their exact configs in metadata (see ``saving.py``), which is how tiny test models load.

The family facts below are derived from the declarations (``backend.families``), for the modules
that still read them by these names; new code asks the declaration.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.families import DECLARATIONS, config_sets, declaration, names, of_config_set

Family = str  # a family's name: `backend.families.names()`
FAMILIES: tuple[Family, ...] = names()
ARCHS = config_sets()

TEXT_ENCODER_FOLDERS: dict[str, tuple[str, ...]] = {d.name: d.text_encoder_folders for d in DECLARATIONS}
TOKENIZER_FOLDERS: dict[str, tuple[str, ...]] = {d.name: d.tokenizer_folders for d in DECLARATIONS}
FAMILY_LABELS: dict[str, str] = {d.name: d.label for d in DECLARATIONS}


def family_of_arch(arch: str) -> Family:
    return of_config_set(arch).name


def arch_for(family: str, v_prediction: bool) -> str:
    """The shipped config set to use for a family (one without a v-prediction model reuses its base set)."""
    return declaration(family).facts(v_prediction).config_set


def config_set_folder(arch: str) -> Path:
    """Where a config set's files lie: in the package of the family it belongs to."""
    folder = of_config_set(arch).configs_folder
    if folder is None:
        raise ValueError(f"the family of the config set {arch!r} declares no configs folder")
    return folder / arch


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
    """Read the component configs of a diffusers pipeline folder (ours or a real one); `unet` holds the
    denoiser's config, from the family's denoiser folder (`unet/` or `transformer/`)."""
    folder = Path(folder)
    return ArchConfigs(
        family=family,
        unet=_read_json(folder / declaration(family).denoiser_folder / "config.json"),
        vae=_read_json(folder / "vae" / "config.json"),
        text_encoders=[_read_json(folder / name / "config.json") for name in declaration(family).text_encoder_folders],
        scheduler=_read_json(folder / "scheduler" / "scheduler_config.json"),
        model_index=_read_json(folder / "model_index.json"),
    )


def load_arch_configs(arch: str) -> ArchConfigs:
    """The shipped configs of a real architecture: a config set (``backend.families.config_sets()``)."""
    return read_diffusers_configs(config_set_folder(arch), family_of_arch(arch))
