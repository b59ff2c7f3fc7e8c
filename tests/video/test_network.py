"""The video LoRA: finetrainers' --target_modules matching, and the PEFT file with the strength baked in."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from backend.video.network import PeftLoraNetwork, TargetModulesError, create_network, target_layers


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.to_q, self.to_k, self.to_v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.to_out = nn.ModuleList([nn.Linear(8, 8), nn.Dropout(0.0)])
        self.norm_q = nn.LayerNorm(8)


class Transformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.ModuleDict({"attn1": Attention(), "ff": nn.Linear(8, 8)}) for _ in range(2)])
        self.proj_out = nn.Linear(8, 4)


def test_names_match_as_peft_matches_a_list_and_a_single_value_is_a_pattern() -> None:
    model = Transformer()
    assert sorted(target_layers(model, ["to_q", "to_k", "to_v", "to_out.0"])) == sorted(
        f"blocks.{b}.attn1.{n}" for b in range(2) for n in ("to_q", "to_k", "to_v", "to_out.0"))
    assert sorted(target_layers(model, [r"blocks\.1\..*(to_q|ff)"])) == ["blocks.1.attn1.to_q", "blocks.1.ff"]
    # One plain name that no whole path matches is a suffix (PEFT would find nothing).
    assert sorted(target_layers(model, ["ff"])) == ["blocks.0.ff", "blocks.1.ff"]
    with pytest.raises(TargetModulesError, match="matches no Linear layer.*to_q"):
        target_layers(model, ["norm_q"])


def test_the_file_is_peft_layout_with_alpha_baked_into_b(tmp_path) -> None:
    torch.manual_seed(0)
    model = Transformer()
    network = create_network(1.0, 4, 2.0, None, None, model, target_modules="to_q to_v")
    assert isinstance(network, PeftLoraNetwork)
    network.apply_to(None, model, False, True)
    for lora in network.unet_loras:
        nn.init.normal_(lora.lora_up.weight)
    x = torch.randn(3, 8)
    layer = model.blocks[0]["attn1"].to_q
    trained = layer(x)
    network.save_weights(tmp_path / "pytorch_lora_weights.safetensors", None, {"note": "x"})
    tensors = load_file(tmp_path / "pytorch_lora_weights.safetensors")
    assert sorted(tensors) == sorted(f"transformer.blocks.{b}.attn1.{n}.lora_{ab}.weight"
                                     for b in range(2) for n in ("to_q", "to_v") for ab in "AB")
    a = tensors["transformer.blocks.0.attn1.to_q.lora_A.weight"]
    b = tensors["transformer.blocks.0.attn1.to_q.lora_B.weight"]
    # A loader applying the file at scale 1 (alpha = rank, no metadata) gets the trained output.
    base = nn.functional.linear(x, layer.weight, layer.bias)
    torch.testing.assert_close(base + x @ a.T @ b.T, trained)
