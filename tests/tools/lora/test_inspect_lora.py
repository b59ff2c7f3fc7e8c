"""inspect_lora: algorithm, blocks, metadata, tags and unknown keys."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from backend.tools.lora import inspect_lora
from backend.tools.lora.lora_files import load_lora, lora_family, save_lora
from backend.tools.lora.tool_cli import run_tool
from tests.end_to_end.helpers import REPO


def test_inspect_trained_lora_and_flags_unknown_keys(trained_lora, tmp_path, capsys) -> None:
    lora = load_lora(trained_lora)
    lora.metadata["ss_tag_frequency"] = json.dumps({"2_sks dog": {"sks dog": 5, " picture 0": 1, "red": 3}})
    typo = {"lora_down.weight": torch.zeros(1, 4), "lora_up.weight": torch.zeros(4, 1), "alpha": torch.tensor(1.0)}
    lora.modules["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_qq"] = typo
    edited = tmp_path / "edited.safetensors"
    save_lora(edited, lora.modules, lora.metadata, None)

    assert run_tool(inspect_lora.main, [str(edited), "--json", "--top", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["algorithm"] == "LoCon" and report["base_model"] == "sd1"
    assert report["metadata"]["ss_network_dim"] == "8" and report["metadata"]["ss_network_module"] == "networks.lora"
    assert report["top_tags"] == [["sks dog", 5], ["red", 3]]
    assert report["unknown_keys"] == [f"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_qq.{p}"
                                      for p in ("alpha", "lora_down.weight", "lora_up.weight")]
    assert any(block.startswith("U-Net down") for block in report["blocks"]) and "text encoder" in report["blocks"]
    assert report["blocks"]["text encoder"]["ranks"] == {"8": report["blocks"]["text encoder"]["modules"]}

    text = subprocess.run([sys.executable, "-m", "backend.tools.inspect_lora", str(trained_lora)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "LoCon" in text.stdout and "all keys are recognised" in text.stdout


def test_inspect_bad_input(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert run_tool(inspect_lora.main, [str(bad)]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_inspect_lycoris_loha_and_lokr(make_lora, capsys) -> None:
    for algorithm, rank in (("LoHa", 4), ("LoKr", 3)):
        path = make_lora(f"{algorithm}.safetensors", algorithm=algorithm, rank=rank, step=4)
        assert run_tool(inspect_lora.main, [str(path), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["algorithm"] == algorithm and report["algorithms"] == {algorithm: report["modules"]}
        assert report["base_model"] == "sd1" and report["unknown_keys"] == []
        for entry in report["blocks"].values():
            assert entry["ranks"] == {str(rank): entry["modules"]}
            assert entry["alphas"] == {str(rank / 2): entry["modules"]}


def test_inspect_shows_the_resolution_of_a_dataset_config_lora(trained_lora, tmp_path, capsys) -> None:
    """A LoRA trained with --dataset_config has no ss_resolution: sd-scripts writes each dataset's
    resolution into ss_datasets, and inspect reads it from there."""
    lora = load_lora(trained_lora)
    lora.metadata.pop("ss_resolution", None)
    lora.metadata["ss_datasets"] = json.dumps([
        {"is_dreambooth": True, "resolution": [768, 512], "subsets": []},
        {"is_dreambooth": True, "resolution": [512, 512], "subsets": []},
    ])
    path = tmp_path / "datasets.safetensors"
    save_lora(path, lora.modules, lora.metadata, None)
    assert run_tool(inspect_lora.main, [str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["resolution"] == ["768x512", "512x512"]
    assert run_tool(inspect_lora.main, [str(path)]) == 0
    assert "  resolution: 768x512, 512x512" in capsys.readouterr().out

    lora.metadata.pop("ss_datasets")
    lora.metadata["ss_resolution"] = "(512, 640)"  # what sd-scripts writes for a folder dataset
    save_lora(path, lora.modules, lora.metadata, None)
    assert run_tool(inspect_lora.main, [str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["resolution"] == ["512x640"]


def test_the_base_model_from_key_names_metadata_and_width() -> None:
    """The key names tell the layout; ss_base_model_version the family where it agrees with them, else
    the first text encoder's width (SD 1.x 768, SD 2.x 1024); "sd" when nothing tells 1.x from 2.x."""
    def te(width: int) -> dict[str, dict[str, torch.Tensor]]:
        return {"lora_te_text_model_encoder_layers_0_self_attn_q_proj": {"lora_down.weight": torch.zeros(2, width)}}

    unet = {"lora_unet_down_blocks_0_attentions_0_proj_in": {"lora_down.weight": torch.zeros(2, 4)}}
    sdxl = {"lora_unet_input_blocks_4_1_proj_in": {"lora_down.weight": torch.zeros(2, 4)}}
    assert lora_family(te(1024), {}) == "sd2" and lora_family(te(768), {}) == "sd1" and lora_family(te(32), {}) == "sd"
    assert lora_family(unet, {}) == "sd" and lora_family(unet, {"ss_base_model_version": "sd_v2_v"}) == "sd2"
    assert lora_family(te(768), {"ss_base_model_version": "sdxl_base_v1-0"}) == "sd1"  # the keys win
    assert lora_family({**unet, **sdxl}, {"ss_base_model_version": "sd_v1"}) == "sdxl"
