"""--block_lr (sdxl_train): sd-scripts' 23 U-Net blocks, numbered by original parameter names."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import UNet2DConditionModel

from backend.models.configs import load_arch_configs
from backend.models.keymap_unet import unet_key_map
from backend.training.block_lr import UNET_BLOCKS, block_of, block_param_groups, parse_block_lrs

from .finetune_helpers import ft_flags, prepare_metadata, weights
from .helpers import run_trainer


def rates(**at: float) -> str:
    """23 rates, 0 except the blocks given as b<N>=rate."""
    values = [0.0] * UNET_BLOCKS
    for key, rate in at.items():
        values[int(key[1:])] = rate
    return ",".join(str(v) for v in values)


def test_the_real_sdxl_unet_splits_into_sd_scripts_blocks() -> None:
    config = load_arch_configs("sdxl").unet
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    table = unet_key_map(dict(unet.config))
    per_block = Counter(block_of(table.to_original(name)) for name, _ in unet.named_parameters())
    assert sorted(per_block) == list(range(UNET_BLOCKS))  # every block has parameters, nothing outside them
    # SDXL's layout: input_blocks.0 is conv_in (weight, bias); out is norm + conv (4 tensors); 8 embedding tensors.
    assert per_block[0] == 8 and per_block[1] == 2 and per_block[22] == 4
    groups, names = block_param_groups(unet, [float(i + 1) for i in range(UNET_BLOCKS)], dict(unet.config))
    assert names == [f"unet_block{i}" for i in range(UNET_BLOCKS)]
    assert sum(len(g["params"]) for g in groups) == len(list(unet.parameters()))


def test_blocks_at_zero_are_frozen_and_left_out() -> None:
    config = load_arch_configs("sdxl").unet
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    groups, names = block_param_groups(unet, parse_block_lrs(rates(b0=1e-5, b22=2e-5)), dict(unet.config))
    assert names == ["unet_block0", "unet_block22"] and [g["lr"] for g in groups] == [1e-5, 2e-5]
    trainable = {name for name, p in unet.named_parameters() if p.requires_grad}
    assert trainable == {name for name, _ in unet.named_parameters()
                         if name.startswith(("time_embedding.", "add_embedding.", "conv_norm_out.", "conv_out."))}


@pytest.mark.parametrize(("text", "message"), [
    ("1e-6,2e-6", "needs 23 comma-separated learning rates"),
    (",".join(["1e-6"] * 22 + ["fast"]), r"value 22 \('fast'\) is not a number"),
    (",".join(["1e-6"] * 22 + ["-1"]), "value 22 is negative"),
])
def test_bad_values_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_block_lrs(text)


def test_sdxl_train_changes_only_the_blocks_with_a_rate(tiny, tmp_path) -> None:
    model = tiny.get("sdxl").path
    folder, metadata = prepare_metadata(tmp_path / "data", model)
    base = weights(model)["unet"]
    result = run_trainer("sdxl_train", *ft_flags(
        model, folder, metadata, tmp_path / "out", "--max_train_steps", "2", "--learning_rate", "1e-3",
        "--block_lr", rates(b22=1e-2, b13=1e-3), "--save_model_as", "diffusers",
    ))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.of("step")[0]["lr"]) == 2  # one rate per block with a rate
    saved = weights(tmp_path / "out" / "tiny")["unet"]
    table = unet_key_map(dict(UNet2DConditionModel.load_config(model / "unet")))
    changed = {block_of(table.to_original(key)) for key in saved if not torch.equal(saved[key], base[key])}
    assert changed == {13, 22}


def test_bad_block_lr_stops_before_training(tiny, tmp_path) -> None:
    model = tiny.get("sdxl").path
    folder, metadata = prepare_metadata(tmp_path / "data", model)
    result = run_trainer("sdxl_train", *ft_flags(model, folder, metadata, tmp_path / "out", "--block_lr", "1e-6"))
    assert result.returncode == 1
    assert "--block_lr needs 23 comma-separated learning rates" in result.stderr
    assert not result.of("step")
