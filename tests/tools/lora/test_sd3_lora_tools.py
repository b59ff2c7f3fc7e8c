"""The LoRA tools on SD 3.5: a lora_sd3 file is recognised, merged into an SAI single file (fused qkv split over
diffusers' layers, the (shift, scale) modulations swapped) giving what our network gives, and extracted from
two models back into sd-scripts' names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend.families.sd3.spec import Sd3Spec
from backend.models.components import Components
from backend.models.detect import detect_model
from backend.networks import lora
from backend.tools.lora import extract_lora_from_models, inspect_lora, merge_lora
from backend.tools.lora.lora_files import load_lora
from backend.tools.lora.tool_cli import run_tool


def load_model(path: Path) -> Components:
    return Sd3Spec().load_weights(detect_model(path), torch.float32)


def run_transformer(transformer: torch.nn.Module) -> torch.Tensor:
    config = transformer.config
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        return transformer(hidden_states=torch.randn(1, 16, 8, 8, generator=g),
                           encoder_hidden_states=torch.randn(1, 5, config.joint_attention_dim, generator=g),
                           pooled_projections=torch.randn(1, config.pooled_projection_dim, generator=g),
                           timestep=torch.tensor([500.0]), return_dict=False)[0]


@pytest.fixture(scope="module")
def sd3_lora(tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    components = load_model(tiny.get("sd3-medium", single_file=True).path)
    network = lora.create_network(1.0, 4, 2.0, None, components.text_encoders, components.unet)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in network.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * 0.05)
    path = tmp_path_factory.mktemp("sd3-lora") / "sd3_lora.safetensors"
    network.save_weights(str(path), None, {"ss_base_model_version": "5-medium", "ss_network_dim": "4",
                                           "ss_network_alpha": "2.0", "ss_network_module": "networks.lora_sd3"})
    return path


def with_network(components: Components, lora_file: Path, ratio: float) -> Components:
    network, _ = lora.create_network_from_weights(ratio, str(lora_file), None, components.text_encoders,
                                                  components.unet)
    network.apply_to(components.text_encoders, components.unet, apply_text_encoder=True)
    network.load_weights(str(lora_file))
    return components


def test_an_sd3_lora_is_recognised(sd3_lora: Path, capsys) -> None:
    loaded = load_lora(sd3_lora)
    assert loaded.family == "sd3_medium"  # the layout by its keys, the model by ss_base_model_version
    assert run_tool(inspect_lora.main, [str(sd3_lora)]) == 0
    assert "base model sd3_medium" in (out := capsys.readouterr().out) and "all keys are recognised" in out


def test_merge_into_an_sd3_single_file_gives_the_networks_output(tiny, sd3_lora: Path, tmp_path: Path, capsys) -> None:
    model = tiny.get("sd3-medium", single_file=True).path
    out = tmp_path / "merged.safetensors"
    assert run_tool(merge_lora.main, ["--models", str(sd3_lora), "--ratios", "0.7", "--sd_model", str(model),
                                      "--save_to", str(out)]) == 0
    assert "match no layer" not in capsys.readouterr().out
    merged = load_model(out)
    expected = with_network(load_model(model), sd3_lora, 0.7)
    assert not torch.allclose(run_transformer(merged.unet), run_transformer(load_model(model).unet), atol=1e-3)
    torch.testing.assert_close(run_transformer(merged.unet), run_transformer(expected.unet), atol=1e-5, rtol=1e-4)


def test_extract_from_two_sd3_models_gives_sd_scripts_names(tiny, sd3_lora: Path, tmp_path: Path, capsys) -> None:
    base = tiny.get("sd3-medium", single_file=True).path
    tuned = tmp_path / "tuned.safetensors"
    assert run_tool(merge_lora.main, ["--models", str(sd3_lora), "--sd_model", str(base), "--save_to", str(tuned)]) == 0
    out = tmp_path / "extracted.safetensors"
    assert run_tool(extract_lora_from_models.main, [
        "--model_org", str(base), "--model_tuned", str(tuned), "--save_to", str(out), "--dim", "4",
        "--clamp_quantile", "1", "--min_diff", "0.0001",
    ]) == 0
    capsys.readouterr()
    extracted = load_lora(out)
    assert "lora_unet_joint_blocks_1_context_block_adaLN_modulation_1" in extracted.modules
    assert extracted.metadata["ss_network_module"] == "networks.lora_sd3"
    trained = load_lora(sd3_lora).modules
    for name in ("lora_unet_joint_blocks_1_context_block_adaLN_modulation_1", "lora_unet_joint_blocks_0_x_block_attn_qkv"):
        ours, theirs = extracted.modules[name], trained[name]
        scale = float(theirs["alpha"]) / theirs["lora_down.weight"].shape[0]
        torch.testing.assert_close(ours["lora_up.weight"] @ ours["lora_down.weight"] * float(ours["alpha"]) / 4,
                                   theirs["lora_up.weight"] @ theirs["lora_down.weight"] * scale, atol=1e-4, rtol=1e-3)


def test_resize_measures_an_sd3_lora_against_its_base_model(tiny, sd3_lora: Path, tmp_path: Path, capsys) -> None:
    from backend.tools.lora import resize_lora

    out = tmp_path / "resized.safetensors"
    flags = ["--model", str(sd3_lora), "--save_to", str(out), "--new_rank", "4", "--dynamic_method", "fro_ckpt",
             "--dynamic_param", "-3"]
    assert run_tool(resize_lora.main, [*flags, "--base_model", str(tiny.get("sd3-medium", single_file=True).path)]) == 0
    capsys.readouterr()
    resized = load_lora(out)
    assert resized.family == "sd3_medium" and set(resized.modules) == set(load_lora(sd3_lora).modules)


def test_convert_an_sd3_lora_to_diffusers_loads_in_diffusers_as_ours(tiny, tmp_path: Path, capsys) -> None:
    """Fused qkv split per layer: diffusers (PEFT) loads the converted file into the MMDiT and gives our
    network's output; converting back gives the same tensors. (The tables are the full-size models': which
    block is last, whose context modulation has its halves swapped, is not the tiny model's, so that layer
    is left out here; the swap itself is checked on the final layer's modulation below.)"""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    from backend.networks.swapped import swap_halves
    from backend.tools.lora import convert_lora
    from backend.tools.lora.lora_diffusers import from_sd_scripts, to_sd_scripts
    from backend.tools.lora.lora_diffusers_names import name_table

    components = load_model(tiny.get("sd3-medium", single_file=True).path)
    network = lora.create_network(1.0, 4, 2.0, None, components.text_encoders, components.unet, context_mod_dim="0")
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in network.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * 0.05)
    sd3_lora = tmp_path / "sd3.safetensors"
    network.save_weights(str(sd3_lora), None, {"ss_base_model_version": "5-medium"})
    as_diffusers = tmp_path / "peft.safetensors"
    assert run_tool(convert_lora.main, ["--model", str(sd3_lora), "--save_to", str(as_diffusers)]) == 0
    capsys.readouterr()
    tensors = load_file(as_diffusers)
    assert any(k.startswith("text_encoder_2.text_model.") for k in tensors)  # CLIP-G
    model = tiny.get("sd3-medium", single_file=True).path
    base = run_transformer(load_model(model).unet)
    ours = run_transformer(with_network(load_model(model), sd3_lora, 1.0).unet)
    assert float((ours - base).abs().max()) > 1e-3
    theirs = load_model(model).unet
    with safe_open(str(as_diffusers), "pt") as file:
        theirs.load_lora_adapter({k: v for k, v in tensors.items() if k.startswith("transformer.")},
                                 prefix="transformer", metadata=json.loads(file.metadata()["lora_adapter_metadata"]))
    torch.testing.assert_close(run_transformer(theirs), ours, atol=1e-5, rtol=1e-4)

    back = tmp_path / "back.safetensors"
    assert run_tool(convert_lora.main, ["--model", str(as_diffusers), "--save_to", str(back),
                                        "--model_type", "sd3_medium"]) == 0
    original, returned = load_file(sd3_lora), load_file(back)
    assert original.keys() == returned.keys() and all(torch.equal(original[k], returned[k]) for k in original)

    table = name_table("sd3_medium")
    assert table.swapped == {"lora_unet_final_layer_adaLN_modulation_1",
                             "lora_unet_joint_blocks_23_context_block_adaLN_modulation_1"}
    up, down = torch.randn(8, 2), torch.randn(2, 3)
    module = {"lora_unet_final_layer_adaLN_modulation_1": {"lora_up.weight": up, "lora_down.weight": down}}
    converted, _ = from_sd_scripts(module, table, "x")
    assert torch.equal(converted["transformer.norm_out.linear.lora_B.weight"], swap_halves(up))  # diffusers' order
    parsed = {"transformer.norm_out.linear": type("M", (), {"up": swap_halves(up), "down": down, "alpha": None})()}
    assert torch.equal(to_sd_scripts(parsed, table, "x")["lora_unet_final_layer_adaLN_modulation_1"]["lora_up.weight"], up)
    # Medium's last block is not Large's: a file that may be either must name its model
    assert "lora_unet_joint_blocks_23_context_block_adaLN_modulation_1" in name_table("sd3").ambiguous
