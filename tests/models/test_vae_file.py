"""sd-scripts' --vae (backend/models/vae_file.py) and --disable_mmap_load_safetensors (models/loading.py), without a
training run: what is loaded, what is refused before loading, what is read without memory-mapping."""

from __future__ import annotations

from pathlib import Path

import safetensors
import safetensors.torch
import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

from backend.families.loaded import family
from backend.models.keymap_vae import vae_to_original
from backend.models.loading import reading_folders_whole
from backend.models.vae_file import vae_file_problem


def other_vae(config: dict, seed: int = 3) -> AutoencoderKL:
    torch.manual_seed(seed)
    return AutoencoderKL.from_config(config).eval()


def save_original(vae: AutoencoderKL, config: dict, path: Path, prefix: str = "") -> Path:
    """In the original (LDM) names, as A1111/ComfyUI VAE files (prefix "") or inside a checkpoint."""
    save_file({prefix + k: v.contiguous() for k, v in vae_to_original(vae.state_dict(), config).items()}, path)
    return path


def test_a_vae_file_folder_or_checkpoint_replaces_the_models_vae(tiny, tmp_path):
    model = tiny.get("sd15", single_file=True)
    spec = family("sd1").spec
    base = spec.load(model.path, tokenizer_cache_dir=model.tokenizer_cache_dir)
    config = dict(base.configs.vae)
    vae = other_vae(config)
    vae.save_pretrained(tmp_path / "pipeline" / "vae")  # a pipeline folder: its vae/ is taken
    given = [save_original(vae, config, tmp_path / "tiny.vae.safetensors"),
             save_original(vae, config, tmp_path / "whole.safetensors", prefix="first_stage_model."),
             tmp_path / "pipeline"]
    wanted = vae.state_dict()
    for path in given:
        assert vae_file_problem(path, config, "SD 1.x") is None
        loaded = spec.load(model.path, tokenizer_cache_dir=model.tokenizer_cache_dir, files={"vae": str(path)})
        state = loaded.vae.state_dict()
        assert all(torch.equal(state[key], wanted[key]) for key in wanted), path
        assert loaded.vae.config.scaling_factor == base.vae.config.scaling_factor  # the model's config
    assert not torch.equal(base.vae.state_dict()["decoder.conv_out.weight"], wanted["decoder.conv_out.weight"])


def test_a_vae_that_does_not_fit_is_refused_before_loading(tiny, tmp_path):
    model = tiny.get("sd15")
    config = dict(family("sd1").spec.load(model.path).configs.vae)
    wider = {**config, "block_out_channels": [width * 2 for width in config["block_out_channels"]]}
    wrong = save_original(other_vae(wider), wider, tmp_path / "sdxl_vae.safetensors")
    assert vae_file_problem(wrong, config, "SD 1.x").startswith(
        f"--vae {wrong}: this VAE does not fit the SD 1.x model's (174 of its weights missing or of another shape, "
        "e.g. decoder.conv_in.bias: [64] where the model has [32]). Give a VAE made for SD 1.x")
    unet = model.path / "unet" / "diffusion_pytorch_model.safetensors"
    assert "not a VAE in the original or diffusers layout" in vae_file_problem(unet, config, "SD 1.x")
    (tmp_path / "notes.txt").write_text("x")
    assert "not a weights file" in vae_file_problem(tmp_path / "notes.txt", config, "SD 1.x")
    assert "holds no diffusers VAE" in vae_file_problem(tmp_path, config, "SD 1.x")


def test_disable_mmap_reads_a_model_folder_without_memory_mapping(tiny, monkeypatch):
    import transformers.modeling_utils

    mapped: list[str] = []
    open_mapped, load_mapped = safetensors.safe_open, safetensors.torch.load_file

    def safe_open(path, *args, **kwargs):
        mapped.append(str(path))
        return open_mapped(path, *args, **kwargs)

    def load_file(path, *args, **kwargs):
        mapped.append(str(path))
        return load_mapped(path, *args, **kwargs)

    monkeypatch.setattr(safetensors, "safe_open", safe_open)
    monkeypatch.setattr(transformers.modeling_utils, "safe_open", safe_open)
    monkeypatch.setattr(safetensors.torch, "load_file", load_file)
    spec, path = family("sdxl").spec, tiny.get("sdxl").path
    spec.load(path)
    assert {Path(file).parent.name for file in mapped} == {"unet", "vae", "text_encoder", "text_encoder_2"}
    mapped.clear()
    with reading_folders_whole():
        whole = spec.load(path)
    assert mapped == [] and whole.unet is not None  # every weights file read whole
