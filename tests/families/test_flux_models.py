"""FLUX.1 model files: BFL <-> diffusers transformer names (against diffusers' own converter), detection
of dev/schnell/parts/folders (Chroma: test_chroma_models.py), loading both layouts of the tiny model to the same modules, saving
and loading back, the missing --ae error, and fp8 part files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from backend import families
from backend.families.flux.keymap import BFL_PREFIX, bfl_to_diffusers, diffusers_to_bfl
from backend.families.flux.loading import load_flux
from backend.families.flux.saving import save_flux
from backend.models.components import Components
from backend.models.detect import ModelMismatchError, detect_model
from tests.tiny_models import TinyModels


def _load(tiny: TinyModels, arch: str, single_file: bool, **replace: str) -> Components:
    model = tiny.get(arch, single_file)
    files = {flag: str(path) for flag, path in model.part_files.items()} | replace
    return load_flux(detect_model(model.path), files, dtype=torch.float32, device="cpu",
                     tokenizer_cache_dir=model.tokenizer_cache_dir)


def _same_weights(first: torch.nn.Module, second: torch.nn.Module) -> None:
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a), type(first).__name__


def _transformer_output(components: Components) -> torch.Tensor:
    """One forward pass on fixed inputs (4 packed latent tokens, 3 text tokens)."""
    config = components.configs.unet
    gen = torch.Generator().manual_seed(0)
    kwargs = {}
    if config["guidance_embeds"]:
        kwargs["guidance"] = torch.tensor([3.5])
    with torch.no_grad():
        return components.unet(
            hidden_states=torch.randn(1, 4, config["in_channels"], generator=gen),
            encoder_hidden_states=torch.randn(1, 3, config["joint_attention_dim"], generator=gen),
            pooled_projections=torch.randn(1, config["pooled_projection_dim"], generator=gen),
            timestep=torch.tensor([0.5]), img_ids=torch.zeros(4, 3), txt_ids=torch.zeros(3, 3), **kwargs,
        ).sample


def _same_output(first: Components, second: Components) -> None:
    # Identical weights; the sums may round differently where the tensors' memory is aligned differently.
    torch.testing.assert_close(_transformer_output(first), _transformer_output(second), rtol=0, atol=1e-5)


# --- key names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["flux-dev", "flux-schnell"])
def test_bfl_and_diffusers_names_are_exact_inverses(arch: str, tiny: TinyModels) -> None:
    state = _load(tiny, arch, False).unet.state_dict()
    bfl = diffusers_to_bfl(state)
    assert ("guidance_in.in_layer.weight" in bfl) == (arch == "flux-dev")
    assert {"double_blocks.0.img_attn.qkv.weight", "single_blocks.1.linear1.weight",
            "double_blocks.0.txt_attn.norm.key_norm.scale", "final_layer.adaLN_modulation.1.bias"} <= bfl.keys()
    back = bfl_to_diffusers(bfl)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    prefixed = diffusers_to_bfl(state, prefix=BFL_PREFIX)
    assert all(key.startswith(BFL_PREFIX) for key in prefixed)
    assert bfl_to_diffusers(prefixed).keys() == state.keys()


def test_bfl_names_convert_as_diffusers_converts_them(tiny: TinyModels, monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    state = _load(tiny, "flux-dev", False).unet.state_dict()
    hidden = state["x_embedder.weight"].shape[0]
    split = torch.split

    def tiny_split(tensor: torch.Tensor, sizes: object, dim: int = 0) -> tuple[torch.Tensor, ...]:
        # diffusers hard-codes the real width (3072) for a single block's linear1; scale it to the tiny one.
        if sizes == (3072, 3072, 3072, 12288):
            sizes = (hidden, hidden, hidden, tensor.shape[0] - 3 * hidden)
        return split(tensor, sizes, dim)

    monkeypatch.setattr(torch, "split", tiny_split)
    theirs = convert_flux_transformer_checkpoint_to_diffusers(diffusers_to_bfl(state, prefix=BFL_PREFIX))
    monkeypatch.setattr(torch, "split", split)
    assert theirs.keys() == state.keys()
    assert all(torch.equal(theirs[k], state[k]) for k in state)


def test_foreign_tensors_are_refused_by_name(tiny: TinyModels) -> None:
    bfl = diffusers_to_bfl(_load(tiny, "flux-schnell", False).unet.state_dict())
    with pytest.raises(ValueError, match=r"hold 1 tensors that are no part of FLUX\.1.*extra\.weight"):
        bfl_to_diffusers({**bfl, "extra.weight": torch.zeros(1)})
    del bfl["img_in.bias"]
    with pytest.raises(ValueError, match=r"lack img_in\.bias"):
        bfl_to_diffusers(bfl)


# --- detection -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch, family", [("flux-dev", "flux_dev"), ("flux-schnell", "flux_schnell")])
@pytest.mark.parametrize("single_file", [False, True])
def test_detects_dev_and_schnell(arch: str, family: str, single_file: bool, tiny: TinyModels) -> None:
    info = detect_model(tiny.get(arch, single_file).path)
    assert (info.family, info.format) == (family, "safetensors" if single_file else "diffusers")
    assert ("without" in info.evidence) == (family == "flux_schnell")
    assert info.configs is not None and info.configs.unet["guidance_embeds"] == (family == "flux_dev")


def test_detects_comfyui_prefixed_and_diffusers_named_files(tiny: TinyModels, tmp_path: Path) -> None:
    bfl = load_file(str(tiny.get("flux-dev", True).path))
    save_file({BFL_PREFIX + k: v for k, v in bfl.items()}, str(tmp_path / "comfy.safetensors"))
    assert detect_model(tmp_path / "comfy.safetensors").family == "flux_dev"
    save_file(bfl_to_diffusers(bfl), str(tmp_path / "diffusers.safetensors"))
    info = detect_model(tmp_path / "diffusers.safetensors")
    assert info.family == "flux_dev" and "transformer_blocks" in info.evidence
    without = {k: v for k, v in bfl.items() if not k.startswith("guidance_in.")}
    save_file(without, str(tmp_path / "schnell.safetensors"))
    assert detect_model(tmp_path / "schnell.safetensors").family == "flux_schnell"


@pytest.mark.parametrize("part, flag", [("ae", "--ae"), ("clip_l", "--clip_l"), ("t5xxl", "--t5xxl")])
def test_a_part_given_as_the_base_model_is_named(part: str, flag: str, tiny: TinyModels, tmp_path: Path) -> None:
    path = tiny.get("flux-dev", True).part_files[part]
    if part == "clip_l":  # CLIP-L is told by its width (768; the tiny one is narrower)
        path = tmp_path / "clip_l.safetensors"
        save_file({"text_model.encoder.layers.0.self_attn.q_proj.weight": torch.zeros(768, 768)}, str(path))
    with pytest.raises(ModelMismatchError, match=rf"^{path}: this is .*pass it as {flag}, and the FLUX\.1 transformer "
                       r"as --pretrained_model_name_or_path"):
        detect_model(path)


def test_a_flux_folder_is_told_by_its_pipeline_class() -> None:
    index = json.loads((families.declaration("flux_dev").configs_folder / "flux-dev" / "model_index.json").read_text())
    assert families.of_pipeline_index(index).denoiser_folder == "transformer"
    assert families.of_pipeline_index({**index, "_class_name": "StableDiffusionXLPipeline"}).name == "sdxl"


# --- loading and saving ----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["flux-dev", "flux-schnell"])
def test_both_layouts_load_the_same_model(arch: str, tiny: TinyModels) -> None:
    folder, single = _load(tiny, arch, False), _load(tiny, arch, True)
    for name in ("unet", "vae"):
        _same_weights(getattr(folder, name), getattr(single, name))
    for first, second in zip(folder.text_encoders, single.text_encoders, strict=True):
        _same_weights(first, second)
    _same_output(folder, single)
    assert [type(t).__name__ for t in single.tokenizers] == [type(t).__name__ for t in folder.tokenizers]
    assert single.tokenizers[1]("a photo of a cat").input_ids == folder.tokenizers[1]("a photo of a cat").input_ids
    assert single.tokenizers[1].eos_token_id == 1 and single.tokenizers[1].pad_token_id == 0
    assert single.family == folder.family == arch.replace("-", "_")


def test_save_and_load_back_both_formats(tiny: TinyModels, tmp_path: Path) -> None:
    model = tiny.get("flux-dev", True)
    loaded = _load(tiny, "flux-dev", True)
    with torch.no_grad():
        loaded.unet.x_embedder.bias.add_(1.0)  # a trained change must survive
    file = save_flux(loaded, tmp_path / "trained.safetensors", dtype=None, metadata={"modelspec.title": "mine"})
    saved = load_file(str(file))
    assert "double_blocks.0.img_attn.qkv.weight" in saved and not any(k.startswith("vae") for k in saved)
    parts = {flag: str(path) for flag, path in model.part_files.items()}
    back = load_flux(detect_model(file), parts, dtype=torch.float32, device="cpu",
                     tokenizer_cache_dir=model.tokenizer_cache_dir)
    _same_weights(loaded.unet, back.unet)
    folder = save_flux(loaded, tmp_path / "pipeline", dtype=None, metadata=None)
    again = load_flux(detect_model(folder), {}, dtype=torch.float32, device="cpu", tokenizer_cache_dir=None)
    for first, second in zip([loaded.unet, loaded.vae, *loaded.text_encoders],
                             [again.unet, again.vae, *again.text_encoders], strict=True):
        _same_weights(first, second)
    _same_output(loaded, again)


def test_a_saved_folder_loads_in_diffusers(tiny: TinyModels) -> None:
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(tiny.get("flux-schnell").path)
    images = pipe("a cat", height=32, width=32, num_inference_steps=1, output_type="pt", max_sequence_length=8,
                  generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (1, 3, 32, 32) and torch.isfinite(images).all()


@pytest.mark.parametrize("missing", ["ae", "clip_l", "t5xxl"])
def test_a_missing_part_file_is_named_before_weights_are_read(
        missing: str, tiny: TinyModels, monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.families.flux import loading

    monkeypatch.setattr(loading, "read_checkpoint", lambda *a, **k: pytest.fail("weights were read"))
    with pytest.raises(ValueError, match=rf"is a FLUX\.1 transformer file.*give --{missing} "):
        _load(tiny, "flux-dev", True, **{missing: ""})


def test_a_flag_beside_a_folder_replaces_its_part(tiny: TinyModels, tmp_path: Path) -> None:
    vae = _load(tiny, "flux-dev", False).vae
    other = load_file(str(tiny.get("flux-dev", True).part_files["ae"]))
    changed = {k: v + 1 if k == "decoder.conv_out.bias" else v for k, v in other.items()}
    save_file(changed, str(tmp_path / "ae.safetensors"))
    replaced = _load(tiny, "flux-dev", False, ae=str(tmp_path / "ae.safetensors")).vae
    assert torch.equal(replaced.decoder.conv_out.bias, vae.decoder.conv_out.bias + 1)


def test_fp8_part_files_load_upcast(tiny: TinyModels, tmp_path: Path) -> None:
    model = tiny.get("flux-schnell", True)
    t5 = load_file(str(model.part_files["t5xxl"]))
    fp8 = {k: v.to(torch.float8_e4m3fn) for k, v in t5.items()}
    save_file(fp8, str(tmp_path / "t5xxl_fp8_e4m3fn.safetensors"))
    shutil.copy(model.path, tmp_path / "transformer.safetensors")
    loaded = _load(tiny, "flux-schnell", True, t5xxl=str(tmp_path / "t5xxl_fp8_e4m3fn.safetensors"))
    t5_module = loaded.text_encoders[1]
    assert t5_module.shared.weight.dtype == torch.float32
    assert torch.equal(t5_module.shared.weight, fp8["shared.weight"].to(torch.float32))
    assert t5_module.encoder.embed_tokens.weight is t5_module.shared.weight


def test_comfyui_scaled_fp8_part_files_load_with_their_scales(tiny: TinyModels, tmp_path: Path) -> None:
    """t5xxl_fp8_e4m3fn_scaled-style files: float8 Linear weights beside `scale_weight` (and `scale_input`), marked
    by a `scaled_fp8` tensor; each weight loads as ComfyUI computes with it, the float8 value times its scale."""
    model = tiny.get("flux-schnell", True)
    t5 = load_file(str(model.part_files["t5xxl"]))
    scaled: dict[str, torch.Tensor] = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    layers = [key.removesuffix(".weight") for key, value in t5.items() if value.ndim == 2 and "SelfAttention" in key]
    for key, value in t5.items():
        scaled[key] = value
    for layer in layers:
        weight = t5[f"{layer}.weight"]
        scale = weight.abs().max() / 448.0  # float8_e4m3fn's largest value
        scaled[f"{layer}.weight"] = (weight / scale).to(torch.float8_e4m3fn)
        scaled[f"{layer}.scale_weight"] = scale.reshape(1)
        scaled[f"{layer}.scale_input"] = torch.ones(1)
    save_file(scaled, str(tmp_path / "t5xxl_fp8_e4m3fn_scaled.safetensors"))
    loaded = _load(tiny, "flux-schnell", True, t5xxl=str(tmp_path / "t5xxl_fp8_e4m3fn_scaled.safetensors"))
    state = loaded.text_encoders[1].state_dict()
    assert layers and not any(key.endswith(("scale_weight", "scale_input")) for key in state)
    for layer in layers:
        expected = scaled[f"{layer}.weight"].to(torch.float32) * scaled[f"{layer}.scale_weight"]
        assert torch.equal(state[f"{layer}.weight"], expected), layer
        # within float8's rounding of the original, where reading the float8 values alone is off by the scale
        torch.testing.assert_close(state[f"{layer}.weight"], t5[f"{layer}.weight"], rtol=0.07, atol=1e-6)
    untouched = next(key for key in t5 if key.endswith("layer_norm.weight"))
    assert torch.equal(state[untouched], t5[untouched])
