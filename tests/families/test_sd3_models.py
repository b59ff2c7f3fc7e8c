"""SD 3.5 model files: SAI <-> diffusers MMDiT names (against diffusers' own converter), detection of
Medium/Large/SD 3/folders, single files with and without their text encoders and VAE (the part flags),
saving and loading back, and the refusals with their reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from backend.families.sd3.keymap import MMDIT_PREFIX, diffusers_to_sai, sai_to_diffusers
from backend.families.sd3.loading import TEXT_PREFIXES, VAE_PREFIX, load_sd3
from backend.families.sd3.saving import save_sd3
from backend.models.components import Components
from backend.models.configs import load_arch_configs
from backend.models.detect import ModelMismatchError, detect_model
from backend.models.keymap_text import from_module_keys
from tests.tiny_models import TinyModels


def _load(path: Path, cache: Path | None, **files: str) -> Components:
    return load_sd3(detect_model(path), files, dtype=torch.float32, device="cpu", tokenizer_cache_dir=cache)


def _same(first: torch.nn.Module, second: torch.nn.Module) -> None:
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), type(first).__name__


@pytest.mark.parametrize("arch", ["sd3-medium", "sd3-large"])
def test_keymap_matches_diffusers_converter_and_inverts(tiny: TinyModels, arch: str) -> None:
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

    state = load_file(str(tiny.get(arch, single_file=True).path))
    mmdit = {k: v for k, v in state.items() if k.startswith(MMDIT_PREFIX)}
    ours = sai_to_diffusers(mmdit)
    reference = convert_sd3_transformer_checkpoint_to_diffusers(dict(mmdit))
    assert ours.keys() == reference.keys() and all(torch.equal(ours[k], reference[k]) for k in ours)
    back = diffusers_to_sai(ours, MMDIT_PREFIX)
    assert back.keys() == mmdit.keys() and all(torch.equal(back[k], mmdit[k]) for k in back)
    with pytest.raises(ValueError, match="lack joint_blocks.0.x_block.mlp.fc1.weight"):
        sai_to_diffusers({k: v for k, v in mmdit.items() if "joint_blocks.0.x_block.mlp.fc1.weight" not in k})


def test_detection_medium_large_folders_and_sd3(tiny: TinyModels, tmp_path: Path) -> None:
    medium = detect_model(tiny.get("sd3-medium", single_file=True).path)
    assert medium.family == "sd3_medium" and "dual attention" in medium.evidence
    assert detect_model(tiny.get("sd3-large", single_file=True).path).family == "sd3_large"
    assert detect_model(tiny.get("sd3-medium").path).family == "sd3_medium"
    assert detect_model(tiny.get("sd3-large").path).family == "sd3_large"
    # a bare MMDiT, and one in diffusers' names, are recognised too
    state = load_file(str(tiny.get("sd3-medium", single_file=True).path))
    bare = {k.removeprefix(MMDIT_PREFIX): v for k, v in state.items() if k.startswith(MMDIT_PREFIX)}
    save_file(bare, str(tmp_path / "bare.safetensors"))
    assert detect_model(tmp_path / "bare.safetensors").family == "sd3_medium"
    save_file(sai_to_diffusers(bare), str(tmp_path / "diffusers.safetensors"))
    assert detect_model(tmp_path / "diffusers.safetensors").family == "sd3_medium"
    # SD 3 (not 3.5) has no q/k norms: refused with the reason
    sd3 = {k: v for k, v in bare.items() if ".ln_q." not in k and ".ln_k." not in k}
    save_file(sd3, str(tmp_path / "sd3.safetensors"))
    with pytest.raises(ModelMismatchError, match=r"Stable Diffusion 3 \(not 3.5\)"):
        detect_model(tmp_path / "sd3.safetensors")


def test_real_configs_build_the_real_shapes() -> None:
    from backend.families.sd3.loading import build_modules

    medium, large = load_arch_configs("sd3-medium"), load_arch_configs("sd3-large")
    transformer = build_modules(medium)[0]
    assert len(transformer.transformer_blocks) == 24 and transformer.transformer_blocks[12].attn2 is not None
    assert transformer.transformer_blocks[13].attn2 is None
    assert transformer.pos_embed.pos_embed.shape[1] == 384 * 384  # diffusers' sd35_medium check: 147456
    assert build_modules(large)[0].context_embedder.weight.shape == (2432, 4096)
    assert [c["hidden_size"] for c in medium.text_encoders[:2]] == [768, 1280]
    assert medium.text_encoders[2]["d_model"] == 4096


def test_a_single_file_without_text_encoders_takes_them_from_flags(tiny: TinyModels, tmp_path: Path) -> None:
    model = tiny.get("sd3-medium", single_file=True)
    whole = _load(model.path, model.tokenizer_cache_dir)
    state = load_file(str(model.path))
    with safe_open(str(model.path), "pt") as file:
        metadata = file.metadata()  # our configs: the tiny widths
    save_file({k: v for k, v in state.items() if not k.startswith(("text_encoders.", VAE_PREFIX))},
              str(tmp_path / "mmdit.safetensors"), metadata)
    with pytest.raises(ValueError, match="without --clip_l --clip_g --t5xxl --vae"):
        _load(tmp_path / "mmdit.safetensors", model.tokenizer_cache_dir)
    files = {}
    for flag, prefix in TEXT_PREFIXES.items():
        part = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        if flag == "clip_l":
            part.pop("text_projection.weight")  # sd-scripts' clip_l files have none: the identity
        save_file(part, str(tmp_path / f"{flag}.safetensors"))
        files[flag] = str(tmp_path / f"{flag}.safetensors")
    save_file({k.removeprefix(VAE_PREFIX): v for k, v in state.items() if k.startswith(VAE_PREFIX)},
              str(tmp_path / "vae.safetensors"))
    parts = _load(tmp_path / "mmdit.safetensors", model.tokenizer_cache_dir, vae=str(tmp_path / "vae.safetensors"),
                  **files)
    _same(parts.unet, whole.unet)
    _same(parts.vae, whole.vae)
    _same(parts.text_encoders[1], whole.text_encoders[1])
    _same(parts.text_encoders[2], whole.text_encoders[2])
    projection = parts.text_encoders[0].text_projection.weight
    assert torch.equal(projection, torch.eye(*projection.shape))
    with pytest.raises(FileNotFoundError, match="--clip_g /nowhere/clip_g.safetensors: no such file"):
        _load(model.path, model.tokenizer_cache_dir, clip_g="/nowhere/clip_g.safetensors")


def test_save_and_load_back_both_layouts(tiny: TinyModels, tmp_path: Path) -> None:
    model = tiny.get("sd3-large", single_file=True)
    components = _load(model.path, model.tokenizer_cache_dir)
    saved = save_sd3(components, tmp_path / "out.safetensors", dtype=None, metadata={"ss_x": "1"})
    keys = set(load_file(str(saved)))
    assert "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight" in keys
    assert any(k.startswith("first_stage_model.encoder.down.0.") for k in keys)
    assert any(k.startswith("text_encoders.clip_g.transformer.text_model.") for k in keys)
    again = _load(saved, model.tokenizer_cache_dir)
    for first, second in zip([components.unet, components.vae, *components.text_encoders],
                             [again.unet, again.vae, *again.text_encoders], strict=True):
        _same(first, second)
    folder = save_sd3(components, tmp_path / "folder", dtype=None, metadata=None)
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "StableDiffusion3Pipeline"
    from_folder = _load(folder, None)
    _same(from_folder.unet, components.unet)
    _same(from_folder.text_encoders[0], components.text_encoders[0])
    with pytest.raises(ValueError, match="saved as .safetensors or as a diffusers folder"):
        save_sd3(components, tmp_path / "out.ckpt", dtype=None, metadata=None)
    assert from_module_keys  # the CLIP keys are written in transformers' classic names
