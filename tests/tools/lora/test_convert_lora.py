"""convert_lora: sd-scripts <-> diffusers/PEFT layouts. The diffusers file loads in diffusers'
`load_lora_weights` with the same effect as the sd-scripts file; converting back gives the same
keys and tensor bytes; files written by diffusers/PEFT themselves keep their scale."""

from __future__ import annotations

import json

import pytest
import safetensors
import safetensors.torch
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from backend.families.network_targets import UNET_FAMILIES
from backend.models.keymap_unet import unet_module_to_original
from backend.models.loading import load_components
from backend.networks.naming import text_encoder_targets, unet_targets
from backend.tools.lora import convert_lora
from backend.tools.lora.lora_diffusers import DiffusersModule, diffusers_family, parse_keys, resolve_alphas
from backend.tools.lora.lora_files import load_lora, module_delta, save_lora
from backend.tools.lora.tool_cli import ToolError, run_tool
from tests.tools.lora.conftest import random_module


def convert(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_tool(convert_lora.main, list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tensors_and_metadata(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    return safetensors.torch.load_file(str(path)), metadata


def sd15_outputs(model_path, lora_path=None) -> tuple[torch.Tensor, torch.Tensor]:
    """U-Net prediction and text-encoder states of the tiny pipeline, with a LoRA loaded by diffusers."""
    pipe = StableDiffusionPipeline.from_pretrained(model_path, safety_checker=None)
    if lora_path is not None:
        pipe.load_lora_weights(str(lora_path))
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 8, 8, generator=generator)
    ids = torch.randint(0, 50, (1, 77), generator=generator)
    with torch.no_grad():
        states = pipe.text_encoder(ids)[0]
        return pipe.unet(latents, 10, encoder_hidden_states=states).sample, states


def test_trained_lora_to_diffusers_loads_the_same_and_comes_back_identical(tiny, trained_lora, tmp_path, capsys) -> None:
    as_diffusers = tmp_path / "pytorch_lora_weights.safetensors"
    code, stdout, err = convert(capsys, "--model", str(trained_lora), "--save_to", str(as_diffusers))
    assert code == 0, err
    assert "from the kohya layout to the diffusers layout" in stdout
    tensors, metadata = tensors_and_metadata(as_diffusers)
    assert all(k.startswith(("unet.", "text_encoder.")) and k.endswith((".lora_A.weight", ".lora_B.weight"))
               for k in tensors)
    assert "unet.down_blocks.0.resnets.0.conv1.lora_A.weight" in tensors  # LoCon 3x3 conv
    adapter = json.loads(metadata["lora_adapter_metadata"])
    assert adapter["unet.r"] == 8 and adapter["unet.lora_alpha"] == 1
    assert adapter["unet.rank_pattern"]["down_blocks.0.resnets.0.conv1"] == 4
    assert adapter["unet.alpha_pattern"]["down_blocks.0.resnets.0.conv1"] == 2
    assert metadata["ss_network_dim"] == "8"  # the training metadata travels along

    model = tiny.get("sd15").path
    base = sd15_outputs(model)
    from_kohya, from_diffusers = sd15_outputs(model, trained_lora), sd15_outputs(model, as_diffusers)
    for kohya_out, diffusers_out, base_out in zip(from_kohya, from_diffusers, base, strict=True):
        assert float((kohya_out - base_out).abs().max()) > 1e-3  # the LoRA does something
        torch.testing.assert_close(diffusers_out, kohya_out, atol=1e-6, rtol=1e-5)

    back = tmp_path / "back.safetensors"
    code, stdout, err = convert(capsys, "--model", str(as_diffusers), "--save_to", str(back))
    assert code == 0, err
    assert "from the diffusers layout to the kohya layout" in stdout
    original, original_meta = tensors_and_metadata(trained_lora)
    again, again_meta = tensors_and_metadata(back)
    assert set(again) == set(original)
    for key, value in original.items():
        assert again[key].dtype == value.dtype and torch.equal(again[key], value), key
    for key in ("ss_network_dim", "ss_network_alpha", "ss_network_args", "ss_base_model_version", "ss_output_name"):
        assert again_meta.get(key) == original_meta.get(key)
    assert "lora_adapter_metadata" not in again_meta

    half = tmp_path / "half.safetensors"
    assert convert(capsys, "--model", str(back), "--save_to", str(half), "--to", "kohya", "--save_precision", "fp16")[0] == 0
    halved = safetensors.torch.load_file(str(half))
    assert set(halved) == set(original)
    assert {v.dtype for k, v in halved.items() if not k.endswith(".alpha")} == {torch.float16}


def test_sdxl_lora_converts_and_loads_in_diffusers(tiny, tmp_path, capsys) -> None:
    model = tiny.get("sdxl").path
    components = load_components(model)
    unet = components.unet
    targets = text_encoder_targets(components.text_encoders, UNET_FAMILIES) + unet_targets(
        unet, True, lambda path: unet_module_to_original(path, unet.config), UNET_FAMILIES)
    generator = torch.Generator().manual_seed(11)
    modules = {t.lora_name: random_module(t, "LoRA", 2 + i % 3, generator) for i, t in enumerate(targets[::9])}
    assert any(n.startswith("lora_te2_") for n in modules) and any(n.startswith("lora_unet_input_blocks_") for n in modules)
    kohya = tmp_path / "sdxl.safetensors"
    save_lora(kohya, modules, {"ss_base_model_version": "sdxl_base_v1-0"}, None)
    as_diffusers = tmp_path / "sdxl-diffusers.safetensors"
    code, _, err = convert(capsys, "--model", str(kohya), "--save_to", str(as_diffusers), "--save_precision", "bf16")
    assert code == 0, err
    tensors, _ = tensors_and_metadata(as_diffusers)
    assert any(k.startswith("text_encoder_2.text_model.") for k in tensors)
    assert {v.dtype for v in tensors.values()} == {torch.bfloat16}

    # Expected: base + delta of every module (bf16 factors), worked out here, not by a loader. (diffusers'
    # own loader of the sd-scripts file mis-scales some SDXL modules of mixed rank, so it is no reference.)
    rounded = {name: {k: v if k == "alpha" else v.to(torch.bfloat16).float() for k, v in p.items()}
               for name, p in modules.items()}
    parts = {"unet": components.unet, "text_encoder": components.text_encoders[0],
             "text_encoder_2": components.text_encoders[1]}
    where = {id(m): (part, path) for part, root in parts.items() for path, m in root.named_modules()}
    expected = {}
    for target in targets[::9]:
        part, path = where[id(target.module)]
        weight = target.module.weight.detach()
        expected[f"{part}.{path}.weight"] = weight + module_delta(target.lora_name, rounded[target.lora_name]).reshape(weight.shape)
    pipe = StableDiffusionXLPipeline.from_pretrained(model)
    pipe.load_lora_weights(str(as_diffusers))
    pipe.fuse_lora()
    pipe.unload_lora_weights()
    got = {f"{part}.{k}": v for part in parts for k, v in getattr(pipe, part).state_dict().items()}
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, atol=1e-5, rtol=1e-4)
    untouched = "unet.conv_in.weight"
    assert torch.equal(got[untouched], components.unet.state_dict()["conv_in.weight"])

    back = tmp_path / "sdxl-back.safetensors"
    assert convert(capsys, "--model", str(as_diffusers), "--save_to", str(back))[0] == 0
    restored = load_lora(back)
    assert set(restored.modules) == set(modules) and restored.family == "sdxl"
    for name, params in restored.modules.items():
        torch.testing.assert_close(module_delta(name, params), module_delta(name, rounded[name]))

    code, _, err = convert(capsys, "--model", str(kohya), "--save_to", str(tmp_path / "x.safetensors"),
                           "--model_type", "sd1")
    assert code == 2 and "SDXL" in err and "--model_type is SD 1.x" in err


def test_peft_written_lora_keeps_its_scale(tiny, sd15, tmp_path, capsys) -> None:
    """A LoRA made by PEFT on the tiny U-Net and saved by diffusers' own save_lora_weights."""
    from peft import LoraConfig, get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(tiny.get("sd15").path, safety_checker=None)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["to_q", "to_v", "proj_in", "conv1"],
                        rank_pattern={"proj_in": 2}, alpha_pattern={"proj_in": 6}, init_lora_weights=False)
    pipe.unet.add_adapter(config)
    StableDiffusionPipeline.save_lora_weights(
        tmp_path, unet_lora_layers=get_peft_model_state_dict(pipe.unet),
        unet_lora_adapter_metadata=config.to_dict(), safe_serialization=True)
    written = tmp_path / "pytorch_lora_weights.safetensors"
    out = tmp_path / "kohya.safetensors"
    code, _, err = convert(capsys, "--model", str(written), "--save_to", str(out), "--model_type", "sd1")
    assert code == 0, err
    lora = load_lora(out)
    peft_layers = {name: m for name, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A}
    assert len(lora.modules) == len(peft_layers) > 4
    for path, layer in peft_layers.items():
        name = "lora_unet_" + path.replace(".", "_")
        a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        expected = (b.flatten(1) @ a.flatten(1)) * layer.scaling["default"]
        got = module_delta(name, lora.modules[name]).flatten(1)
        torch.testing.assert_close(got, expected.detach(), atol=1e-6, rtol=1e-5)
    assert lora.metadata["ss_base_model_version"] == "sd_v1"
    assert {float(p["alpha"]) for p in lora.modules.values()} == {8.0, 6.0}


def test_older_diffusers_keys_and_refusals(make_lora, tmp_path, capsys) -> None:
    down, up = torch.randn(2, 32), torch.randn(32, 2)
    older = {
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight": down,
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight": up,
        "text_encoder.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight": down,
        "text_encoder.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight": up,
        "unet.mid_block.attentions.0.proj_out.lora.down.weight": down,
        "unet.mid_block.attentions.0.proj_out.lora.up.weight": up,
        "unet.mid_block.attentions.0.proj_out.alpha": torch.tensor(1.0),
    }
    parsed = parse_keys(older, "older")
    resolve_alphas(parsed, {}, "older")
    assert {k: m.alpha for k, m in parsed.items()} == {
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0": 2.0,
        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj": 2.0,
        "unet.mid_block.attentions.0.proj_out": 1.0,
    }
    path = tmp_path / "older.safetensors"
    safetensors.torch.save_file({k: v.clone() for k, v in older.items()}, str(path))
    out = tmp_path / "older-kohya.safetensors"
    assert convert(capsys, "--model", str(path), "--save_to", str(out))[0] == 0
    assert set(load_lora(out).modules) == {
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj", "lora_unet_mid_block_attentions_0_proj_out"}

    with pytest.raises(ToolError, match="diffusers layout: convert it first"):  # what the other tools say
        load_lora(path)

    loha = make_lora("loha.safetensors", algorithm="LoHa")
    code, _, err = convert(capsys, "--model", str(loha), "--save_to", str(tmp_path / "x.safetensors"))
    assert code == 2 and "hada_w1_a" in err and "diffusers" in err
    code, _, err = convert(capsys, "--model", str(make_lora()), "--save_to", str(tmp_path / "x.ckpt"))
    assert code == 2 and ".safetensors" in err
    dora = dict(older, **{"unet.mid_block.attentions.0.proj_out.lora_magnitude_vector": torch.ones(32)})
    safetensors.torch.save_file({k: v.clone() for k, v in dora.items()}, str(tmp_path / "dora.safetensors"))
    code, _, err = convert(capsys, "--model", str(tmp_path / "dora.safetensors"), "--save_to", str(tmp_path / "x.safetensors"))
    assert code == 2 and "DoRA" in err
    stray = {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_qq.lora_A.weight": down,
             "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_qq.lora_B.weight": up}
    safetensors.torch.save_file(stray, str(tmp_path / "stray.safetensors"))
    code, _, err = convert(capsys, "--model", str(tmp_path / "stray.safetensors"), "--save_to", str(tmp_path / "x.safetensors"))
    assert code == 2 and "not layers of SD 1.x/2.x" in err and "to_qq" in err
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "x.ckpt").exists()


def test_the_model_of_a_diffusers_file() -> None:
    """Parts of the model only one layout has tell the layout (SD 2.x's deeper text encoder too); the
    metadata or the widths tell the family inside it; shared parts alone tell nothing."""
    def modules(*keys: str, width: int = 32) -> dict[str, DiffusersModule]:
        return {key: DiffusersModule(torch.zeros(2, width), torch.zeros(width, 2)) for key in keys}

    cross = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    first_te, deep_te = (f"text_encoder.text_model.encoder.layers.{i}.self_attn.q_proj" for i in (0, 20))
    assert diffusers_family(modules(cross, width=1024), {}) == "sd2"
    assert diffusers_family(modules(cross, width=768), {}) == "sd1" and diffusers_family(modules(cross), {}) == "sd"
    assert diffusers_family(modules(cross), {"ss_base_model_version": "sd_v2"}) == "sd2"
    assert diffusers_family(modules(first_te, deep_te, width=1024), {}) == "sd2"
    assert diffusers_family(modules(first_te), {}) is None
    assert diffusers_family(modules(first_te), {"ss_base_model_version": "sd_v1"}) == "sd1"
    clip_g = modules("text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj")
    assert diffusers_family(clip_g, {}) is None  # SDXL's CLIP-G, or SD 3.5's
    assert diffusers_family(clip_g, {"ss_base_model_version": "sdxl_base_v1-0"}) == "sdxl"
    with pytest.raises(ToolError, match="layers of SD 1.x/2.x and SDXL"):
        diffusers_family(modules(cross, "unet.up_blocks.0.attentions.0.proj_in"), {})
