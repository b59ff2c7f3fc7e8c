"""Diffusers folder <-> original single file <-> loaded modules: tensors must survive unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from backend.families.loaded import get_spec
from backend.models.components import Components
from backend.models.files import read_checkpoint
from backend.models.loading import load_components
from tests.tiny_models import TinyModels

ARCHS = ["sd15", "sd2", "sd2-v", "sdxl"]


def assert_same_weights(a: Components, b: Components) -> None:
    pairs = [(a.unet, b.unet), (a.vae, b.vae), *zip(a.text_encoders, b.text_encoders, strict=True)]
    for left, right in pairs:
        sa, sb = left.state_dict(), right.state_dict()
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("arch", ARCHS)
def test_folder_single_file_folder_round_trip(arch: str, tiny: TinyModels, tmp_path: Path) -> None:
    folder = load_components(tiny.get(arch).path)
    spec = get_spec(folder.family)
    single = spec.save(folder, tmp_path / "model.safetensors")
    # Our own single files carry their configs, so no tokenizer cache is needed for the weights,
    # but tokenizers still come from the cache folder of the single-file variant.
    cache = tiny.get(arch, single_file=True).tokenizer_cache_dir
    loaded = spec.load(single, tokenizer_cache_dir=cache)
    assert_same_weights(folder, loaded)
    assert loaded.v_prediction == (arch == "sd2-v")
    again = load_components(spec.save(loaded, tmp_path / "again"))
    assert_same_weights(folder, again)


@pytest.mark.parametrize("arch", ARCHS)
def test_single_file_is_preserved_through_load_and_save(arch: str, tiny: TinyModels, tmp_path: Path) -> None:
    model = tiny.get(arch, single_file=True)
    components = load_components(model.path, tokenizer_cache_dir=model.tokenizer_cache_dir)
    out = get_spec(components.family).save(components, tmp_path / "copy.safetensors")
    original, copy = load_file(str(model.path)), load_file(str(out))
    assert original.keys() == copy.keys()
    assert all(torch.equal(original[k], copy[k]) for k in original)


def test_sd2_file_keeps_the_full_open_clip_stack(tiny: TinyModels) -> None:
    state, _ = read_checkpoint(tiny.get("sd2", single_file=True).path)
    layers = {
        int(k.split(".")[4]) for k in state if k.startswith("cond_stage_model.model.transformer.resblocks.")
    }
    assert layers == {0, 1, 2}  # the diffusers encoder has 2; the file keeps OpenCLIP's last block
    assert state["cond_stage_model.model.text_projection"].shape == (32, 32)
    assert "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight" in state
    assert "cond_stage_model.model.positional_embedding" in state


def test_sdxl_file_layout(tiny: TinyModels) -> None:
    state, metadata = read_checkpoint(tiny.get("sdxl", single_file=True).path)
    assert "model.diffusion_model.label_emb.0.0.weight" in state
    assert "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight" in state
    assert "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight" in state
    assert state["conditioner.embedders.1.model.text_projection"].shape == (64, 32)  # x @ P: width x proj
    assert state["first_stage_model.decoder.mid.attn_1.q.weight"].ndim == 4
    assert metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base"


@pytest.mark.parametrize("nested", [False, True])
def test_ckpt_loading(nested: bool, tiny: TinyModels, tmp_path: Path) -> None:
    model = tiny.get("sd15", single_file=True)
    state, metadata = read_checkpoint(model.path)
    payload = {"state_dict": state, "metadata": metadata} if nested else {**state, "metadata": metadata}
    torch.save({"epoch": 3, **payload} if nested else payload, tmp_path / "model.ckpt")
    reference = load_components(model.path, tokenizer_cache_dir=model.tokenizer_cache_dir)
    loaded = load_components(tmp_path / "model.ckpt", tokenizer_cache_dir=model.tokenizer_cache_dir)
    assert_same_weights(reference, loaded)


def test_save_as_ckpt_and_dtype(tiny: TinyModels, tmp_path: Path) -> None:
    components = load_components(tiny.get("sd15").path)
    out = get_spec("sd1").save(components, tmp_path / "half.ckpt", dtype=torch.float16)
    state, metadata = read_checkpoint(out)
    assert {v.dtype for v in state.values()} == {torch.float16}
    assert metadata["modelspec.prediction_type"] == "epsilon"


def test_folder_save_replaces_atomically(tiny: TinyModels, tmp_path: Path) -> None:
    components = load_components(tiny.get("sd15").path)
    target = tmp_path / "model"
    get_spec("sd1").save(components, target)
    (target / "stale.txt").write_text("old")
    get_spec("sd1").save(components, target)
    assert not (target / "stale.txt").exists()
    assert (target / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary leftovers
    with pytest.raises(FileExistsError, match="not a diffusers model folder"):
        get_spec("sd1").save(components, tmp_path)  # an output root is never replaced wholesale


def test_diffusers_single_file_loader_agrees(tiny: TinyModels) -> None:
    """Cross-check with diffusers' own converter (offline: configs from the tiny folder)."""
    from diffusers import StableDiffusionXLPipeline

    folder = tiny.get("sdxl")
    single = tiny.get("sdxl", single_file=True)
    pipe = StableDiffusionXLPipeline.from_single_file(
        str(single.path), config=str(folder.path), local_files_only=True
    )
    ours = load_components(single.path, tokenizer_cache_dir=single.tokenizer_cache_dir)
    for mine, theirs in [
        (ours.unet, pipe.unet),
        (ours.vae, pipe.vae),
        (ours.text_encoders[0], pipe.text_encoder),
        (ours.text_encoders[1], pipe.text_encoder_2),
    ]:
        theirs_state = theirs.state_dict()
        assert all(torch.equal(v, theirs_state[k]) for k, v in mine.state_dict().items())


def test_single_file_read_to_a_device_gives_the_same_tensors(tiny: TinyModels) -> None:
    # --lowram reads a single file straight to the training device; on the CPU that is "cpu".
    from backend.models.files import read_checkpoint

    path = tiny.get("sd15", single_file=True).path
    default, _ = read_checkpoint(path)
    direct, _ = read_checkpoint(path, device="cpu")
    assert default.keys() == direct.keys()
    assert all(torch.equal(default[k], direct[k]) for k in default)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_models_get_the_mode_a_plain_open_gives(tiny: TinyModels, tmp_path: Path) -> None:
    """safetensors and mkdtemp create 0600 files and folders; a saved model is for other users and tools too."""
    components = load_components(tiny.get("sd15").path)
    old = os.umask(0o022)
    try:
        single = get_spec("sd1").save(components, tmp_path / "model.safetensors")
        ckpt = get_spec("sd1").save(components, tmp_path / "model.ckpt")
        folder = get_spec("sd1").save(components, tmp_path / "folder")
    finally:
        os.umask(old)
    assert single.stat().st_mode & 0o777 == 0o644
    assert ckpt.stat().st_mode & 0o777 == 0o644
    assert folder.stat().st_mode & 0o777 == 0o755
    modes = {p.relative_to(folder).as_posix(): p.stat().st_mode & 0o777 for p in folder.rglob("*")}
    assert {name: mode for name, mode in modes.items() if mode not in (0o644, 0o755)} == {}
