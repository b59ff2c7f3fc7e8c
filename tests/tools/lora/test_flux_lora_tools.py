"""The LoRA tools on FLUX.1 LoRAs (sd-scripts' lora_flux keys): recognised, inspected against the real
FLUX.1 layer names, resized and merged; baked into a FLUX.1 model (diffusers folder or BFL transformer
file), extracted from two FLUX.1 models, measured against one (resize's fro_ckpt). convert_lora, which has
no FLUX.1 name tables, refuses with a message that says what to do instead."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import CLIPTextModel

from backend.families import network_files
from backend.families.flux.spec import FluxSpec
from backend.models.components import Components
from backend.models.detect import detect_model
from backend.networks import lora
from backend.tools.lora import convert_lora, extract_lora_from_models, inspect_lora, merge_lora, resize_lora
from backend.tools.lora.lora_files import load_lora, lora_family, save_lora
from backend.tools.lora.tool_cli import run_tool
from tests.networks.helpers import clip_config
from tests.networks.test_flux_lora import flux_transformer, randomize, t5_encoder


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


def test_convert_a_flux_lora_to_diffusers_and_back(flux_lora: Path, tmp_path: Path, capsys) -> None:
    from safetensors.torch import load_file

    as_diffusers = tmp_path / "peft.safetensors"
    assert run_tool(convert_lora.main, ["--model", str(flux_lora), "--save_to", str(as_diffusers)]) == 0
    assert "FLUX.1" in capsys.readouterr().out
    tensors = load_file(as_diffusers)
    assert "transformer.transformer_blocks.0.attn.to_q.lora_A.weight" in tensors  # fused qkv: one per member
    assert "transformer.single_transformer_blocks.0.proj_mlp.lora_B.weight" in tensors  # linear1's MLP rows
    assert any(k.startswith("text_encoder.text_model.") for k in tensors)  # CLIP-L
    assert any(k.startswith("text_encoder_2.encoder.block.") for k in tensors)  # T5, no text_model. prefix

    # diffusers (PEFT) loads the converted file into the transformer: the output our network gives.
    torch.manual_seed(0)  # the fixture's models
    text_encoders = [CLIPTextModel(clip_config()).eval(), t5_encoder().eval()]
    base = flux_transformer().eval()
    ours = copy.deepcopy(base)
    network, _ = lora.create_network_from_weights(1.0, str(flux_lora), None, text_encoders, ours, for_inference=True)
    network.apply_to(text_encoders, ours, apply_text_encoder=False)
    network.load_weights(flux_lora)
    theirs = copy.deepcopy(base)
    with safe_open(str(as_diffusers), "pt") as file:
        theirs.load_lora_adapter({k: v for k, v in tensors.items() if k.startswith("transformer.")},
                                 prefix="transformer", metadata=json.loads(file.metadata()["lora_adapter_metadata"]))
    with torch.no_grad():
        inputs = transformer_inputs(base)
        expected, got = (model(**inputs, return_dict=False)[0] for model in (ours, theirs))
        assert float((expected - base(**inputs, return_dict=False)[0]).abs().max()) > 1e-3
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)

    back = tmp_path / "back.safetensors"
    assert run_tool(convert_lora.main, ["--model", str(as_diffusers), "--save_to", str(back)]) == 0
    original, returned = load_file(flux_lora), load_file(back)
    assert original.keys() == returned.keys()
    assert all(torch.equal(original[k], returned[k]) for k in original)
    assert load_lora(back).family == "flux"


def test_a_diffusers_trained_flux_lora_becomes_block_diagonal(tmp_path: Path, capsys) -> None:
    """Diffusers trains to_q and to_v with A's of their own: the fused qkv module holds both, to_k's rows zero."""
    from safetensors.torch import load_file, save_file

    g = torch.Generator().manual_seed(3)
    inner, width = 3072, 3072  # FLUX.1's real widths: the tables are the full-size model's
    prefix = "transformer.transformer_blocks.0.attn"
    tensors = {f"{prefix}.to_q.lora_A.weight": torch.randn(2, width, generator=g),
               f"{prefix}.to_q.lora_B.weight": torch.randn(inner, 2, generator=g),
               f"{prefix}.to_v.lora_A.weight": torch.randn(4, width, generator=g),
               f"{prefix}.to_v.lora_B.weight": torch.randn(inner, 4, generator=g)}
    source = tmp_path / "diffusers.safetensors"
    save_file(tensors, str(source))
    out = tmp_path / "kohya.safetensors"
    assert run_tool(convert_lora.main, ["--model", str(source), "--save_to", str(out)]) == 0
    capsys.readouterr()
    module = {k.split(".", 1)[1]: v for k, v in load_file(out).items()
              if k.startswith("lora_unet_double_blocks_0_img_attn_qkv.")}
    assert float(module["alpha"]) == 6 and module["lora_down.weight"].shape == (6, width)
    delta = module["lora_up.weight"] @ module["lora_down.weight"]
    q = tensors[f"{prefix}.to_q.lora_B.weight"] @ tensors[f"{prefix}.to_q.lora_A.weight"]
    v = tensors[f"{prefix}.to_v.lora_B.weight"] @ tensors[f"{prefix}.to_v.lora_A.weight"]
    torch.testing.assert_close(delta, torch.cat([q, torch.zeros(inner, width), v]), atol=1e-4, rtol=1e-4)


# --- Checkpoints: merging into, extracting from and measuring against a FLUX.1 model (tiny FLUX.1 [dev]).


def load_model(path: Path, text_encoders: bool = True) -> Components:
    return FluxSpec().load_weights(detect_model(path), torch.float32, text_encoders=text_encoders)


def transformer_inputs(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Inputs of the right widths for any FLUX.1 transformer config (4 image tokens, 3 text tokens)."""
    config = transformer.config
    g = torch.Generator().manual_seed(1)
    tokens, text = 4, 3
    return {
        "hidden_states": torch.randn(1, tokens, config.in_channels, generator=g),
        "encoder_hidden_states": torch.randn(1, text, config.joint_attention_dim, generator=g),
        "pooled_projections": torch.randn(1, config.pooled_projection_dim, generator=g),
        "timestep": torch.tensor([0.5]), "guidance": torch.tensor([3.5]),
        "img_ids": torch.stack([torch.zeros(tokens), torch.arange(tokens) // 2, torch.arange(tokens) % 2], dim=-1),
        "txt_ids": torch.zeros(text, 3),
    }


def run_transformer(transformer: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return transformer(**transformer_inputs(transformer), return_dict=False)[0]


def run_clip(clip: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return clip(torch.tensor([[0, 5, 9, 2]])).last_hidden_state


@pytest.fixture(scope="module")
def tiny_flux_lora(tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA over the tiny FLUX.1 [dev] model: every block layer (fused qkv/linear1), CLIP-L and T5."""
    components = load_model(tiny.get("flux-dev").path)
    network = lora.create_network(1.0, 4, 2.0, None, components.text_encoders, components.unet, train_t5xxl="True")
    randomize(network)
    path = tmp_path_factory.mktemp("tiny-flux-lora") / "tiny_flux_lora.safetensors"
    network.save_weights(str(path), None, {"ss_base_model_version": "flux1", "ss_network_dim": "4",
                                           "ss_network_alpha": "2.0", "ss_network_module": "networks.lora_flux"})
    return path


def with_network(components: Components, lora_file: Path, ratio: float) -> Components:
    """`components` with our network made from `lora_file` applied at `ratio` (the reference result)."""
    network, weights = lora.create_network_from_weights(ratio, str(lora_file), None, components.text_encoders,
                                                        components.unet)
    network.apply_to(components.text_encoders, components.unet, apply_text_encoder=bool(components.text_encoders))
    network.load_weights(str(lora_file))
    return components


def test_merge_into_a_flux_folder_bakes_transformer_and_text_encoders(tiny, tiny_flux_lora: Path, tmp_path: Path,
                                                                      capsys) -> None:
    model = tiny.get("flux-dev").path
    out = tmp_path / "merged"
    assert run_tool(merge_lora.main, ["--models", str(tiny_flux_lora), "--ratios", "0.7", "--sd_model", str(model),
                                      "--save_to", str(out)]) == 0
    capsys.readouterr()
    merged = load_model(out)
    expected = with_network(load_model(model), tiny_flux_lora, 0.7)
    assert not torch.allclose(run_transformer(merged.unet), run_transformer(load_model(model).unet), atol=1e-3)
    torch.testing.assert_close(run_transformer(merged.unet), run_transformer(expected.unet), atol=1e-5, rtol=1e-4)
    clip, t5 = merged.text_encoders
    torch.testing.assert_close(run_clip(clip), run_clip(expected.text_encoders[0]), atol=1e-5, rtol=1e-4)
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(t5(ids).last_hidden_state, expected.text_encoders[1](ids).last_hidden_state,
                               atol=1e-5, rtol=1e-4)


def test_merge_into_a_flux_transformer_file(tiny, tiny_flux_lora: Path, tmp_path: Path, capsys) -> None:
    model = tiny.get("flux-dev", single_file=True).path
    out = tmp_path / "merged.safetensors"
    assert run_tool(merge_lora.main, ["--models", str(tiny_flux_lora), "--sd_model", str(model),
                                      "--save_to", str(out)]) == 0
    stdout = capsys.readouterr().out
    # Only the transformer is in the file: the text-encoder modules are said to be left out, and how to merge them.
    assert "text-encoder modules were not merged" in stdout and "diffusers folder" in stdout
    assert "match no layer" not in stdout
    merged = load_model(out)
    assert not merged.text_encoders
    expected = with_network(load_model(model), tiny_flux_lora, 1.0)
    torch.testing.assert_close(run_transformer(merged.unet), run_transformer(expected.unet), atol=1e-5, rtol=1e-4)
    with safe_open(str(out), "pt") as file:
        assert "double_blocks.0.img_attn.qkv.weight" in set(file.keys())  # BFL names, as the input
        assert file.metadata()["modelspec.architecture"] == "flux-1-dev"

    pickle = tmp_path / "merged.ckpt"
    assert run_tool(merge_lora.main, ["--models", str(tiny_flux_lora), "--sd_model", str(model),
                                      "--save_to", str(pickle)]) == 2
    assert "not as .ckpt" in capsys.readouterr().err and not pickle.exists()


def test_merge_refuses_a_lora_of_another_family(tiny, make_lora, tiny_flux_lora: Path, tmp_path: Path,
                                                capsys) -> None:
    out = tmp_path / "merged.safetensors"
    assert run_tool(merge_lora.main, ["--models", str(make_lora()), "--sd_model", str(tiny.get("flux-dev").path),
                                      "--save_to", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a LoRA for SD 1.x" in err and "FLUX.1 [dev]" in err and not out.exists()
    assert run_tool(merge_lora.main, ["--models", str(tiny_flux_lora), "--sd_model", str(tiny.get("sd15").path),
                                      "--save_to", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a LoRA for FLUX.1" in err and "SD 1.x" in err and not out.exists()


def low_rank(shape: tuple[int, int], rank: int, generator: torch.Generator) -> torch.Tensor:
    return (torch.randn(shape[0], rank, generator=generator) @ torch.randn(rank, shape[1], generator=generator)) * 0.05


@pytest.fixture(scope="module")
def tuned_flux(tiny, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """The tiny FLUX.1 [dev] transformer file with rank-2 changes in a few layers (one fused qkv as a whole,
    a single block's linear1 and modulation, an embedder sd-scripts does not extract), saved by the spec."""
    components = load_model(tiny.get("flux-dev", single_file=True).path)
    transformer = components.unet
    g = torch.Generator().manual_seed(5)
    changed = {
        "lora_unet_double_blocks_0_img_attn_qkv": [transformer.transformer_blocks[0].attn.get_submodule(n)
                                                   for n in ("to_q", "to_k", "to_v")],
        "lora_unet_single_blocks_0_linear1": [transformer.single_transformer_blocks[0].get_submodule(n)
                                              for n in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")],
        "lora_unet_single_blocks_0_modulation_lin": [transformer.single_transformer_blocks[0].norm.linear],
        "lora_unet_img_in": [transformer.x_embedder],
    }
    with torch.no_grad():
        for members in changed.values():
            rows = [m.weight.shape[0] for m in members]
            delta = low_rank((sum(rows), members[0].weight.shape[1]), 2, g)
            for member, piece in zip(members, torch.split(delta, rows), strict=True):
                member.weight += piece
    path = tmp_path_factory.mktemp("tuned-flux") / "tuned.safetensors"
    FluxSpec().save(components, path)
    return path, set(changed) - {"lora_unet_img_in"}


def test_extract_from_two_flux_models_reproduces_the_change(tiny, tuned_flux, tmp_path: Path, capsys) -> None:
    base = tiny.get("flux-dev", single_file=True).path
    tuned, extracted = tuned_flux
    out = tmp_path / "extracted.safetensors"
    assert run_tool(extract_lora_from_models.main, [
        "--model_org", str(base), "--model_tuned", str(tuned), "--save_to", str(out), "--dim", "4",
        "--clamp_quantile", "1", "--min_diff", "0.001",
    ]) == 0
    assert "transformer:" in capsys.readouterr().out  # the unchanged block layers were skipped
    loaded = load_lora(out)
    # sd-scripts' flux_extract_lora: the blocks' layers by BFL name, a fused qkv/linear1 as one module.
    assert set(loaded.modules) == extracted and loaded.family == "flux"
    qkv = loaded.modules["lora_unet_double_blocks_0_img_attn_qkv"]
    inner = load_model(base).unet.transformer_blocks[0].attn.to_q.out_features
    assert qkv["lora_up.weight"].shape == (3 * inner, 4) and qkv["lora_down.weight"].shape == (4, inner)
    assert loaded.metadata["ss_network_module"] == "networks.lora_flux"
    assert loaded.metadata["ss_base_model_version"] == "flux1" and loaded.metadata["ss_v2"] == "False"
    assert loaded.metadata["modelspec.architecture"] == "flux-1-dev/lora"
    assert json.loads(loaded.metadata["ss_network_args"]) == {}

    expected = run_transformer(load_model(tuned).unet)
    applied = with_network(load_model(base), out, 1.0)
    got = run_transformer(applied.unet)
    # Everything but the embedder change (not extracted, as sd-scripts) is reproduced: compare with it removed.
    reference = load_model(tuned)
    reference.unet.x_embedder.load_state_dict(load_model(base).unet.x_embedder.state_dict())
    torch.testing.assert_close(got, run_transformer(reference.unet), atol=1e-4, rtol=1e-3)
    assert not torch.allclose(got, expected, atol=1e-4)

    # From the diffusers folder of the same base model (its transformer alone is loaded): the same LoRA.
    folder = tiny.get("flux-dev").path
    assert not load_model(folder, text_encoders=False).text_encoders
    again = tmp_path / "from_folder.safetensors"
    assert run_tool(extract_lora_from_models.main, [
        "--model_org", str(folder), "--model_tuned", str(tuned), "--save_to", str(again), "--dim", "4",
        "--clamp_quantile", "1", "--min_diff", "0.001",
    ]) == 0
    capsys.readouterr()
    assert set(load_lora(again).modules) == extracted
    for name, params in load_lora(again).modules.items():
        delta = params["lora_up.weight"] @ params["lora_down.weight"]
        first = loaded.modules[name]
        torch.testing.assert_close(delta, first["lora_up.weight"] @ first["lora_down.weight"], atol=1e-5, rtol=1e-4)


def test_extract_refuses_what_does_not_fit(tiny, tuned_flux, tmp_path: Path, capsys) -> None:
    base = tiny.get("flux-dev", single_file=True).path
    out = tmp_path / "x.safetensors"
    assert run_tool(extract_lora_from_models.main, [
        "--model_org", str(base), "--model_tuned", str(tiny.get("sd15").path), "--save_to", str(out), "--dim", "4",
    ]) == 2
    err = capsys.readouterr().err
    assert "is FLUX.1 [dev] but" in err and "SD 1.x" in err
    assert run_tool(extract_lora_from_models.main, [
        "--model_org", str(base), "--model_tuned", str(tuned_flux[0]), "--save_to", str(out), "--dim", "4",
        "--conv_dim", "2",
    ]) == 2
    assert "--conv_dim does not apply: FLUX.1's transformer has no convolutions" in capsys.readouterr().err
    assert not out.exists()


def test_resize_measures_a_flux_lora_against_its_base_model(tiny, tiny_flux_lora: Path, tmp_path: Path,
                                                            capsys) -> None:
    out = tmp_path / "resized.safetensors"
    flags = ["--model", str(tiny_flux_lora), "--save_to", str(out), "--new_rank", "4",
             "--dynamic_method", "fro_ckpt", "--dynamic_param", "-3"]
    assert run_tool(resize_lora.main, [*flags, "--base_model", str(tiny.get("flux-dev").path)]) == 0
    resized = load_lora(out)
    assert resized.family == "flux" and set(resized.modules) == set(load_lora(tiny_flux_lora).modules)
    capsys.readouterr()
    out.unlink()
    # The transformer file has no text encoders to measure the LoRA's CLIP-L/T5 modules against.
    assert run_tool(resize_lora.main, [*flags, "--base_model", str(tiny.get("flux-dev", single_file=True).path)]) == 2
    assert "holds no text encoders" in capsys.readouterr().err and not out.exists()
