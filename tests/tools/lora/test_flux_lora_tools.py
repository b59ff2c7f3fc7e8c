"""The LoRA tools on FLUX.1 LoRAs (sd-scripts' lora_flux keys): recognised, inspected against the real
FLUX.1 layer names, resized and merged; what the tools cannot do for FLUX.1 yet (convert, checkpoints)
is refused with a message that says what to do instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import CLIPTextModel

from backend.families import network_files
from backend.networks import lora
from backend.tools.lora import convert_lora, inspect_lora, merge_lora, resize_lora
from backend.tools.lora.lora_files import load_lora, lora_family, save_lora
from backend.tools.lora.tool_cli import run_tool
from tests.networks.helpers import clip_config
from tests.networks.test_flux_lora import flux_transformer, t5_encoder


@pytest.fixture(scope="module")
def flux_lora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FLUX.1 LoRA as sd-scripts writes one: fused qkv, CLIP-L and T5 modules, the embedders (in_dims)."""
    torch.manual_seed(0)
    text_encoders = [CLIPTextModel(clip_config()).eval(), t5_encoder().eval()]
    network = lora.create_network(1.0, 4, 2.0, None, text_encoders, flux_transformer(),
                                  train_t5xxl="True", in_dims="[4,4,4,4,4]")
    with torch.no_grad():
        for module in network.all_loras():
            for name, param in module.named_parameters():
                if "up" in name:
                    param.normal_(0, 0.1)
    path = tmp_path_factory.mktemp("flux") / "flux_lora.safetensors"
    network.save_weights(str(path), None, {"ss_base_model_version": "flux1", "ss_network_dim": "4",
                                           "ss_network_alpha": "2.0", "ss_network_module": "networks.lora_flux"})
    return path


def test_a_flux_lora_is_recognised_and_inspected(flux_lora: Path, tmp_path: Path, capsys) -> None:
    loaded = load_lora(flux_lora)
    assert loaded.family == "flux" and network_files.label(loaded.family) == "FLUX.1"
    assert network_files.fits("flux", "flux_dev") and network_files.fits("flux", "flux_schnell")
    assert not network_files.fits("flux", "sdxl")
    clip_only = {name: params for name, params in loaded.modules.items() if name.startswith("lora_te1_")}
    assert lora_family(clip_only, {}) == "sdxl"  # SDXL's CLIP-L is lora_te1_ too: the metadata settles it
    assert lora_family(clip_only, {"ss_base_model_version": "flux1"}) == "flux"

    typo = {"lora_down.weight": torch.zeros(1, 4), "lora_up.weight": torch.zeros(4, 1), "alpha": torch.tensor(1.0)}
    loaded.modules["lora_unet_double_blocks_0_img_attn_qkvv"] = typo
    edited = tmp_path / "edited.safetensors"
    save_lora(edited, loaded.modules, loaded.metadata, None)
    assert run_tool(inspect_lora.main, [str(edited), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["base_model"] == "flux" and report["algorithm"] == "LoRA"
    # Checked against the full-size FLUX.1 [dev] layer names: only the typo is unknown.
    assert report["unknown_keys"] == [f"lora_unet_double_blocks_0_img_attn_qkvv.{p}"
                                      for p in ("alpha", "lora_down.weight", "lora_up.weight")]
    blocks = report["blocks"]
    assert {"double block 00", "single block 00", "single block 01", "text encoder 1", "text encoder 3"} <= set(blocks)
    assert blocks["double block 00"]["ranks"] == {"4": blocks["double block 00"]["modules"] - 1, "1": 1}  # + the typo


def test_resize_and_merge_keep_a_flux_lora_a_flux_lora(flux_lora: Path, tmp_path: Path, capsys) -> None:
    resized = tmp_path / "resized.safetensors"
    assert run_tool(resize_lora.main, ["--model", str(flux_lora), "--save_to", str(resized), "--new_rank", "2"]) == 0
    small = load_lora(resized)
    original = load_lora(flux_lora)
    assert small.family == "flux" and set(small.modules) == set(original.modules)
    assert {int(p["lora_down.weight"].shape[0]) for p in small.modules.values()} == {2}

    merged = tmp_path / "merged.safetensors"
    assert run_tool(merge_lora.main, ["--models", str(flux_lora), str(resized), "--ratios", "1", "-1",
                                      "--save_to", str(merged), "--new_rank", "4"]) == 0
    both = load_lora(merged)
    assert both.family == "flux" and set(both.modules) == set(original.modules)
    capsys.readouterr()


def test_what_the_tools_refuse_for_flux(flux_lora: Path, tiny, tmp_path: Path, capsys) -> None:
    assert run_tool(convert_lora.main, ["--model", str(flux_lora), "--save_to", str(tmp_path / "d.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "is a LoRA for FLUX.1" in err and "loads as it is in ComfyUI" in err
    assert not (tmp_path / "d.safetensors").exists()

    model = tiny.get("flux-dev").path
    out = tmp_path / "merged_model.safetensors"
    assert run_tool(merge_lora.main, ["--models", str(flux_lora), "--sd_model", str(model),
                                      "--save_to", str(out)]) == 2
    err = capsys.readouterr().err
    assert "FLUX.1 [dev] model" in err and "SD 1.x, SD 2.x and SDXL checkpoints only" in err
    assert not out.exists()
