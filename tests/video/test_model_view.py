"""finetrainers' --transformer_id / --vae_id / --text_encoder_id / --tokenizer_id: the run loads the base
folder with those components replaced (backend/video/model_view.py), checked before anything loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from backend.families.loaded import family
from backend.models.files import model_identity
from backend.options import parse_args
from backend.video.preflight import build_video_plan
from tests.data.video.make_clips import write_clip

WAN = "wan2.1-t2v-1.3b"


def plan(tiny, tmp_path: Path, *extra: str):
    clips = tmp_path / "clips"
    if not clips.exists():
        write_clip(clips / "a.mp4", frames=17, size=(64, 64))
        (clips / "a.txt").write_text("a red square", encoding="utf-8")
    argv = ["--model_name", "wan", "--pretrained_model_name_or_path", str(tiny.get(WAN).path), "--training_type",
            "lora", "--output_dir", str(tmp_path / "out"), "--data_root", str(clips), "--video_resolution_buckets",
            "17x64x64", *extra]
    return build_video_plan(parse_args("train_video", argv))


def changed_transformer(base: Path, into: Path) -> Path:
    """A copy of the base model's transformer folder with one weight changed (a "fine-tuned" transformer)."""
    shutil.copytree(base / "transformer", into)
    weights = next(into.glob("*.safetensors"))
    tensors = load_file(weights)
    name = next(k for k in tensors if k.endswith("weight") and tensors[k].ndim == 2)
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, weights)
    return into


def test_a_transformer_folder_replaces_the_models_own(tiny, tmp_path) -> None:
    base = tiny.get(WAN).path
    other = changed_transformer(base, tmp_path / "finetuned" / "transformer")
    result = plan(tiny, tmp_path, "--transformer_id", str(other))
    assert result.ok, result.errors
    view = Path(result.model.path)
    assert view != base and (view / "vae").resolve() == (base / "vae").resolve()
    loaded = family("wan").spec.load(view)
    expected = load_file(next(other.glob("*.safetensors")))
    state = loaded.unet.state_dict()
    assert all(torch.equal(state[k].float(), v.float()) for k, v in expected.items())
    # the text and VAE caches' records see the swap: the view's identity is not the base folder's
    assert model_identity(view) != model_identity(base)
    # a whole pipeline folder given: its transformer/ is taken; the same links give the same view
    again = plan(tiny, tmp_path, "--transformer_id", str(other.parent))
    assert again.ok and Path(again.model.path) == view


def test_what_cannot_stand_in_for_a_component_is_refused_before_loading(tiny, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    missing = plan(tiny, tmp_path, "--vae_id", str(tmp_path / "nowhere"))
    assert any("--vae_id" in e and "does not exist" in e for e in missing.errors), missing.errors
    empty = plan(tiny, tmp_path, "--vae_id", str(tmp_path / "empty"))
    assert any("--vae_id" in e and "not a diffusers vae folder" in e for e in empty.errors), empty.errors
    extra = plan(tiny, tmp_path, "--text_encoder_2_id", str(tiny.get(WAN).path / "text_encoder"))
    assert any("this model has no text_encoder_2" in e for e in extra.errors), extra.errors


def original_names(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A diffusers Wan transformer's weights in Wan-AI's original names (a ComfyUI diffusion_models file)."""
    from backend.families.wan.native_names import native_module_name

    out = {}
    for name, tensor in transformer.state_dict().items():
        module, _, parameter = name.rpartition(".")
        if parameter == "scale_shift_table":  # the blocks' and the head's modulation, a parameter of its own
            out[f"{module}.modulation" if module else "head.modulation"] = tensor.clone()
        else:
            out[f"{native_module_name(module)}.{parameter}"] = tensor.clone()
    return out


def test_a_single_wan_transformer_file_in_original_names_replaces_the_models_own(tiny, tmp_path) -> None:
    base = tiny.get(WAN).path
    finetuned = family("wan").spec.load(base).unet
    with torch.no_grad():
        for parameter in finetuned.parameters():
            parameter.add_(0.01)
    file = tmp_path / "wan2.1_t2v_finetuned.safetensors"
    save_file(original_names(finetuned), str(file))
    result = plan(tiny, tmp_path, "--transformer_id", str(file))
    assert result.ok, result.errors
    view = Path(result.model.path)
    assert (view / "transformer" / "config.json").resolve() == (base / "transformer" / "config.json").resolve()
    loaded = family("wan").spec.load(view).unet.state_dict()
    expected = finetuned.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k].float(), expected[k].float()) for k in expected)
    assert model_identity(view) != model_identity(base)
    ltx = plan(tiny, tmp_path, "--model_name", "ltx_video", "--transformer_id", str(file))
    assert any("a single transformer file is read for Wan 2.1 T2V so far" in e for e in ltx.errors), ltx.errors
