"""LoRA files for the LoRA tool tests: one trained on the tiny SD 1.5 model per session, and synthetic
ones with random weights in the real key layout of that model (fast, and any algorithm)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from backend.families.network_targets import UNET_FAMILIES
from backend.models.components import Components
from backend.models.loading import load_components
from backend.networks.naming import Target, identity_name, text_encoder_targets, unet_targets
from backend.tools.lora.lora_files import save_lora
from tests.end_to_end.helpers import base_flags, make_images, run_trainer
from tests.tiny_models import TinyModels

Modules = dict[str, dict[str, torch.Tensor]]


@pytest.fixture(scope="session")
def sd15(tiny: TinyModels) -> Components:
    return load_components(tiny.get("sd15").path)


@pytest.fixture(scope="session")
def trained_lora(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    make_images(root / "train" / "2_sks dog", 2)
    out = root / "out"
    result = run_trainer("train_network", *base_flags(
        tiny.get("sd15").path, root / "train", out, "--max_train_steps", "2", "--learning_rate", "1e-2",
        "--network_dim", "8", "--network_args", "conv_dim=4", "conv_alpha=2",
    ))
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "tiny.safetensors"


def sd15_targets(components: Components) -> list[Target]:
    return text_encoder_targets(components.text_encoders, UNET_FAMILIES) + unet_targets(
        components.unet, True, identity_name, UNET_FAMILIES)


def random_module(target: Target, algorithm: str, rank: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    shape = tuple(target.module.weight.shape)
    out_dim, in_dim = shape[0], int(torch.tensor(shape[1:]).prod())

    def rand(*size: int) -> torch.Tensor:
        return torch.randn(*size, generator=generator) * 0.3

    alpha = torch.tensor(rank / 2)
    if algorithm == "LoRA":
        return {"lora_down.weight": rand(rank, *shape[1:]), "lora_up.weight": rand(out_dim, rank, *(1,) * (len(shape) - 2)),
                "alpha": alpha}
    if algorithm == "LoHa":
        return {"hada_w1_a": rand(out_dim, rank), "hada_w1_b": rand(rank, in_dim),
                "hada_w2_a": rand(out_dim, rank), "hada_w2_b": rand(rank, in_dim), "alpha": alpha}
    # LoKr: a full 2 x 2 (or 1 x 1) w1 and a low-rank w2 for the rest
    f_out, f_in = (2 if out_dim % 2 == 0 else 1), (2 if in_dim % 2 == 0 else 1)
    return {"lokr_w1": rand(f_out, f_in), "lokr_w2_a": rand(out_dim // f_out, rank),
            "lokr_w2_b": rand(rank, in_dim // f_in), "alpha": alpha}


@pytest.fixture
def make_lora(sd15: Components, tmp_path: Path) -> Callable[..., Path]:
    """Write a synthetic LoRA over every `step`-th layer of the tiny SD 1.5 model."""

    def make(name: str = "syn.safetensors", algorithm: str = "LoRA", rank: int = 4, seed: int = 0, step: int = 3,
             metadata: dict[str, str] | None = None, extra: Modules | None = None) -> Path:
        generator = torch.Generator().manual_seed(seed)
        modules = {t.lora_name: random_module(t, algorithm, rank, generator) for t in sd15_targets(sd15)[::step]}
        modules.update(extra or {})
        path = tmp_path / name
        save_lora(path, modules, {"ss_base_model_version": "sd_v1", "ss_network_dim": str(rank),
                                  "ss_network_alpha": str(rank / 2), **(metadata or {})}, None)
        return path

    return make
