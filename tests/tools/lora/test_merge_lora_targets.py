"""merge_lora into a diffusers folder that diffusers itself loads, and into an SDXL checkpoint
(SGM-named U-Net modules, both text encoders, LoRA and LoHa at their ratios)."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline

from backend.families.network_targets import UNET_FAMILIES
from backend.models.keymap_unet import unet_module_to_original
from backend.models.loading import load_components
from backend.networks.naming import text_encoder_targets, unet_targets
from backend.tools.lora import merge_lora
from backend.tools.lora.lora_files import load_lora, save_lora
from backend.tools.lora.lora_layers import lora_layers
from backend.tools.lora.merge_into_model import detect_checkpoint, load_weights
from backend.tools.lora.tool_cli import run_tool
from tests.tools.lora.conftest import random_module


def merge(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_tool(merge_lora.main, list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lora_delta(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """scale * up @ down, written out here rather than taken from the tool."""
    up, down = params["lora_up.weight"].flatten(1), params["lora_down.weight"]
    return (up @ down.flatten(1)) * (params["alpha"] / down.shape[0])


def loha_delta(params: dict[str, torch.Tensor]) -> torch.Tensor:
    rank = params["hada_w1_b"].shape[0]
    return (params["hada_w1_a"] @ params["hada_w1_b"]) * (params["hada_w2_a"] @ params["hada_w2_b"]) * (params["alpha"] / rank)


def test_merge_into_diffusers_folder_loads_in_diffusers(tiny, sd15, make_lora, tmp_path, capsys) -> None:
    lora_path = make_lora(rank=4, seed=7, step=2)
    out = tmp_path / "merged-folder"
    code, _, err = merge(capsys, "--sd_model", str(tiny.get("sd15").path), "--models", str(lora_path),
                         "--ratios", "0.8", "--save_to", str(out))
    assert code == 0, err
    pipe = StableDiffusionPipeline.from_pretrained(out, safety_checker=None)  # diffusers' own loader
    merged_layers = lora_layers(pipe.unet, [pipe.text_encoder])
    base_layers = lora_layers(sd15.unet, sd15.text_encoders)
    modules = load_lora(lora_path).modules
    for name, params in modules.items():
        base = base_layers[name].weight.detach()
        expected = base + 0.8 * lora_delta(params).reshape(base.shape)
        torch.testing.assert_close(merged_layers[name].weight.detach(), expected, atol=1e-5, rtol=1e-5)
    untouched = next(name for name in base_layers if name not in modules)
    assert torch.equal(merged_layers[untouched].weight, base_layers[untouched].weight)
    assert (out / "tokenizer").is_dir() and (out / "model_index.json").is_file()


def test_sdxl_loras_merge_into_sdxl_checkpoint(tiny, tmp_path, capsys) -> None:
    model = tiny.get("sdxl").path
    base = load_components(model)
    unet = base.unet
    targets = text_encoder_targets(base.text_encoders, UNET_FAMILIES) + unet_targets(
        unet, True, lambda path: unet_module_to_original(path, unet.config), UNET_FAMILIES)
    generator = torch.Generator().manual_seed(3)
    lora = {t.lora_name: random_module(t, "LoRA", 3, generator) for t in targets[::7]}
    loha = {t.lora_name: random_module(t, "LoHa", 2, generator) for t in targets[3::11] if t.kind != "conv"}
    assert any(n.startswith("lora_te1_") for n in lora) and any(n.startswith("lora_te2_") for n in lora)
    assert any(n.startswith("lora_unet_input_blocks_") for n in lora) and any(n.startswith("lora_unet_output_blocks_") for n in loha)
    lora_path, loha_path = tmp_path / "sdxl-lora.safetensors", tmp_path / "sdxl-loha.safetensors"
    save_lora(lora_path, lora, {"ss_base_model_version": "sdxl_base_v1-0"}, None)
    save_lora(loha_path, loha, {}, None)
    out = tmp_path / "sdxl-merged.safetensors"
    code, stdout, err = merge(capsys, "--sd_model", str(model), "--models", str(lora_path), str(loha_path),
                              "--ratios", "0.5", "-1.5", "--save_to", str(out))
    assert code == 0, err
    assert f"merged {len(lora)} modules at ratio 0.5" in stdout
    merged = load_weights(detect_checkpoint(str(out)), torch.float32)
    assert merged.family == "sdxl"
    base_layers, merged_layers = lora_layers(base.unet, base.text_encoders), lora_layers(merged.unet, merged.text_encoders)
    expected = {name: base_layers[name].weight.detach().clone() for name in set(lora) | set(loha)}
    for name, params in lora.items():
        expected[name] += 0.5 * lora_delta(params).reshape(expected[name].shape)
    for name, params in loha.items():
        expected[name] -= 1.5 * loha_delta(params).reshape(expected[name].shape)
    for name, weight in expected.items():
        torch.testing.assert_close(merged_layers[name].weight, weight, atol=1e-5, rtol=1e-5)
