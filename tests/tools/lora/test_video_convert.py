"""convert_lora --to comfyui: video LoRAs with ComfyUI's diffusion_model.<original module> names."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from backend.families.loaded import family
from backend.tools.convert_lora import main
from backend.tools.lora.tool_cli import ToolError


def peft_file(path, modules, metadata=None) -> None:
    tensors = {}
    for module in modules:
        tensors[f"transformer.{module}.lora_A.weight"] = torch.ones(4, 8)
        tensors[f"transformer.{module}.lora_B.weight"] = torch.full((8, 4), 0.5)
    save_file(tensors, str(path), metadata)


def test_wan_gets_wan_ai_names_found_by_its_modules(tmp_path) -> None:
    peft_file(tmp_path / "wan.safetensors", ["blocks.0.attn1.to_q", "blocks.0.attn2.to_out.0", "blocks.1.ffn.net.0.proj"])
    main(["--model", str(tmp_path / "wan.safetensors"), "--save_to", str(tmp_path / "out.safetensors"), "--to", "comfyui"])
    assert sorted(load_file(tmp_path / "out.safetensors")) == sorted(
        f"diffusion_model.{m}.lora_{ab}.weight" for m in ("blocks.0.self_attn.q", "blocks.0.cross_attn.o", "blocks.1.ffn.0")
        for ab in "AB")


def test_native_names_are_the_inverse_of_diffusers_renames() -> None:
    wan = family("wan").native_module_name
    assert [wan(p) for p in ("blocks.3.norm2", "blocks.3.norm3", "proj_out", "condition_embedder.time_proj",
                             "blocks.0.attn2.add_k_proj")] == [
        "blocks.3.norm3", "blocks.3.norm2", "head.head", "time_projection.1", "blocks.0.cross_attn.k_img"]
    ltx = family("ltx_video").native_module_name
    assert ltx("transformer_blocks.2.attn1.to_q") == "transformer_blocks.2.attn1.to_q"
    assert ltx("proj_in") == "patchify_proj" and ltx("transformer_blocks.0.attn1.norm_q") == "transformer_blocks.0.attn1.q_norm"


def test_a_finetrainers_alpha_is_baked_and_bad_inputs_are_named(tmp_path) -> None:
    adapter = json.dumps({"r": 4, "lora_alpha": 8})
    peft_file(tmp_path / "ltx.safetensors", ["transformer_blocks.0.attn1.to_k"], {"lora_adapter_metadata": adapter})
    main(["--model", str(tmp_path / "ltx.safetensors"), "--save_to", str(tmp_path / "out.safetensors"), "--to", "comfyui",
          "--model_type", "ltx_video"])
    out = load_file(tmp_path / "out.safetensors")
    assert torch.equal(out["diffusion_model.transformer_blocks.0.attn1.to_k.lora_B.weight"], torch.full((8, 4), 1.0))
    save_file({"lora_unet_x.lora_down.weight": torch.ones(1)}, str(tmp_path / "kohya.safetensors"))
    with pytest.raises(ToolError, match="converts video LoRAs in the diffusers/PEFT layout"):
        main(["--model", str(tmp_path / "kohya.safetensors"), "--save_to", str(tmp_path / "o2.safetensors"), "--to",
              "comfyui"])
    with pytest.raises(ToolError, match="--model_type sdxl is not a video family"):
        main(["--model", str(tmp_path / "ltx.safetensors"), "--save_to", str(tmp_path / "o3.safetensors"), "--to",
              "comfyui", "--model_type", "sdxl"])
