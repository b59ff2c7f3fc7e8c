"""Seeded tiny models for the network tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

# pytest's default import mode puts only tests/ on sys.path; the code under test lives at the repo root.
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from diffusers import UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

from .helpers import clip_config, sd1_unet, sdxl_unet  # noqa: E402


@pytest.fixture
def sd1() -> tuple[CLIPTextModel, UNet2DConditionModel]:
    torch.manual_seed(0)
    return CLIPTextModel(clip_config()).eval(), sd1_unet().eval()


@pytest.fixture
def sdxl() -> tuple[list[torch.nn.Module], UNet2DConditionModel]:
    torch.manual_seed(0)
    te1 = CLIPTextModel(clip_config()).eval()
    te2 = CLIPTextModelWithProjection(clip_config()).eval()
    return [te1, te2], sdxl_unet().eval()
