"""Seeded tiny models for the network tests."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from .helpers import clip_config, sd1_unet, sdxl_unet


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
