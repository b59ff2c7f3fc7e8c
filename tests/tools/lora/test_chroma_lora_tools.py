"""The LoRA tools on Chroma LoRAs (sd-scripts' lora_flux keys, ss_base_model_version "chroma"): inspected
against the real Chroma layer names, and baked into a Chroma BFL transformer file by merge_lora."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from backend.families.chroma.spec import ChromaSpec
from backend.models.components import Components
from backend.models.detect import detect_model
from backend.networks import lora
from backend.tools.lora import inspect_lora, merge_lora
from backend.tools.lora.tool_cli import run_tool
from tests.networks.test_chroma_lora import run
from tests.networks.test_flux_lora import randomize


def load_model(path: Path) -> Components:
    return ChromaSpec().load_weights(detect_model(path), torch.float32, text_encoders=False)


def test_a_chroma_lora_is_inspected_and_merged_into_a_chroma_file(tiny, tmp_path: Path, capsys) -> None:
    model = tiny.get("chroma", single_file=True).path
    components = load_model(model)
    network = lora.create_network(1.0, 4, 2.0, None, [], components.unet)
    randomize(network)
    lora_file = tmp_path / "chroma_lora.safetensors"
    network.save_weights(str(lora_file), None, {"ss_base_model_version": "chroma", "ss_network_dim": "4",
                                                "ss_network_alpha": "2.0"})
    assert run_tool(inspect_lora.main, [str(lora_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["base_model"] == "chroma" and report["unknown_keys"] == []  # the full-size Chroma's layers

    out = tmp_path / "merged.safetensors"
    assert run_tool(merge_lora.main, ["--models", str(lora_file), "--sd_model", str(model), "--save_to", str(out)]) == 0
    assert "match no layer" not in capsys.readouterr().out
    network.apply_to([], components.unet, apply_text_encoder=False)
    torch.testing.assert_close(run(load_model(out).unet), run(components.unet), atol=1e-5, rtol=1e-4)
    with safe_open(str(out), "pt") as file:
        assert "distilled_guidance_layer.in_proj.weight" in set(file.keys())
        assert file.metadata()["modelspec.architecture"] == "chroma"
