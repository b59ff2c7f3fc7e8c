"""finetrainers' --transformer_id / --vae_id / --text_encoder_id / --tokenizer_id: the run loads the base
folder with those components replaced (backend/video/model_view.py), checked before anything loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from backend.families.loaded import family
from backend.models.files import model_identity
from backend.options import parse_args
from backend.video.preflight import build_video_plan
from tests.data.video.make_clips import write_clip

WAN = "wan2.1-t2v-1.3b"


def plan(tiny, tmp_path: Path, *extra: str, arch: str = WAN, model_name: str = "wan"):
    clips = tmp_path / "clips"
    if not clips.exists():
        write_clip(clips / "a.mp4", frames=17, size=(64, 64))
        (clips / "a.txt").write_text("a red square", encoding="utf-8")
    argv = ["--model_name", model_name, "--pretrained_model_name_or_path", str(tiny.get(arch).path),
            "--training_type", "lora", "--output_dir", str(tmp_path / "out"), "--data_root", str(clips),
            "--video_resolution_buckets", "17x64x64", *extra]
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


def wan_original_names(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
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


def ltx_original_names(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """In Lightricks' names with their checkpoints' `model.diffusion_model.` prefix, and a VAE tensor beside (their
    files hold the VAE too; the transformer's reading leaves it out)."""
    rename = family("ltx_video").native_module_name
    out = {"vae.decoder.conv_in.conv.bias": torch.zeros(4)}
    for name, tensor in transformer.state_dict().items():
        module, _, parameter = name.rpartition(".")
        out["model.diffusion_model." + (f"{rename(module)}.{parameter}" if module else parameter)] = tensor.clone()
    return out


# HunyuanVideo's original names by diffusers' (the inverse of diffusers' convert_hunyuan_video_transformer_to_diffusers).
_HUNYUAN_RENAMES = [
    ("context_embedder.token_refiner.refiner_blocks.", "txt_in.individual_token_refiner.blocks."),
    ("context_embedder.time_text_embed.timestep_embedder.linear_1", "txt_in.t_embedder.mlp.0"),
    ("context_embedder.time_text_embed.timestep_embedder.linear_2", "txt_in.t_embedder.mlp.2"),
    ("context_embedder.time_text_embed.text_embedder", "txt_in.c_embedder"),
    ("context_embedder.proj_in", "txt_in.input_embedder"),
    ("time_text_embed.timestep_embedder.linear_1", "time_in.mlp.0"),
    ("time_text_embed.timestep_embedder.linear_2", "time_in.mlp.2"),
    ("time_text_embed.guidance_embedder.linear_1", "guidance_in.mlp.0"),
    ("time_text_embed.guidance_embedder.linear_2", "guidance_in.mlp.2"),
    ("time_text_embed.text_embedder.linear_1", "vector_in.in_layer"),
    ("time_text_embed.text_embedder.linear_2", "vector_in.out_layer"),
    ("x_embedder", "img_in"), ("transformer_blocks.", "double_blocks."), ("single_double_blocks.", "single_blocks."),
    ("norm1_context.linear", "txt_mod.linear"), ("norm1.linear", "img_mod.linear"),
    ("attn.norm_added_q", "txt_attn_q_norm"), ("attn.norm_added_k", "txt_attn_k_norm"),
    ("attn.to_add_out", "txt_attn_proj"), ("ff_context.net.0.proj", "txt_mlp.fc1"), ("ff_context.net.2", "txt_mlp.fc2"),
    ("ff.net.0.proj", "img_mlp.fc1"), ("ff.net.2", "img_mlp.fc2"), ("norm.linear", "modulation.linear"),
    ("proj_out", "final_layer.linear"),
]


def hunyuan_original_names(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """In Tencent's original names: q, k, v fused (and the single blocks' MLP input with them), the final
    modulation's halves swapped, the refiner's, single and double blocks' own names."""
    state = {k: v.clone() for k, v in transformer.state_dict().items()}
    out: dict[str, torch.Tensor] = {}

    def fuse(prefix: str, names: list[str], into: str) -> None:
        for parameter in ("weight", "bias"):
            out[f"{into}.{parameter}"] = torch.cat([state.pop(f"{prefix}{n}.{parameter}") for n in names])

    for key in [k for k in state if k.endswith(".attn.to_q.weight")]:
        prefix = key.removesuffix("attn.to_q.weight")
        index = prefix.split(".")[-2]
        if prefix.startswith("single_transformer_blocks."):
            fuse(prefix, ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"], f"single_blocks.{index}.linear1")
            for old, new in (("attn.norm_q", "q_norm"), ("attn.norm_k", "k_norm"), ("proj_out", "linear2")):
                for key2 in [k for k in state if k.startswith(prefix + old + ".")]:
                    out[f"single_blocks.{index}.{new}.{key2.rpartition('.')[2]}"] = state.pop(key2)
        elif prefix.startswith("transformer_blocks."):
            fuse(prefix, ["attn.to_q", "attn.to_k", "attn.to_v"], f"double_blocks.{index}.img_attn_qkv")
            fuse(prefix, ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"],
                 f"double_blocks.{index}.txt_attn_qkv")
            for old, new in (("attn.norm_q", "img_attn_q_norm"), ("attn.norm_k", "img_attn_k_norm"),
                             ("attn.to_out.0", "img_attn_proj")):
                for key2 in [k for k in state if k.startswith(prefix + old + ".")]:
                    out[f"double_blocks.{index}.{new}.{key2.rpartition('.')[2]}"] = state.pop(key2)
        else:  # the token refiner's blocks
            fuse(prefix, ["attn.to_q", "attn.to_k", "attn.to_v"],
                 f"txt_in.individual_token_refiner.blocks.{index}.self_attn_qkv")
            for key2 in [k for k in state if k.startswith(prefix + "attn.to_out.0.")]:
                out[f"txt_in.individual_token_refiner.blocks.{index}.self_attn_proj.{key2.rpartition('.')[2]}"] = (
                    state.pop(key2))
            for old, new in (("norm_out.linear", "adaLN_modulation.1"), ("ff.net.0.proj", "mlp.fc1"),
                             ("ff.net.2", "mlp.fc2")):
                for key2 in [k for k in state if k.startswith(prefix + old + ".")]:
                    out[f"txt_in.individual_token_refiner.blocks.{index}.{new}.{key2.rpartition('.')[2]}"] = (
                        state.pop(key2))
            for key2 in [k for k in state if k.startswith(prefix)]:  # norm1, norm2 keep their names
                out[key2.replace(prefix, f"txt_in.individual_token_refiner.blocks.{index}.")] = state.pop(key2)
    for parameter in ("weight", "bias"):
        scale, shift = state.pop(f"norm_out.linear.{parameter}").chunk(2)
        out[f"final_layer.adaLN_modulation.1.{parameter}"] = torch.cat([shift, scale])
    for key, tensor in state.items():
        for old, new in _HUNYUAN_RENAMES:
            key = key.replace(old, new)
        out[key] = tensor
    return out


SINGLE_FILE_CASES = {  # family: (tiny model, train_video's --model_name, the file in original names)
    "wan": (WAN, "wan", wan_original_names),
    "ltx_video": ("ltx-video", "ltx_video", ltx_original_names),
    "hunyuan_video": ("hunyuan-video", "hunyuan_video", hunyuan_original_names),
}


@pytest.mark.parametrize("name", list(SINGLE_FILE_CASES))
def test_a_single_transformer_file_in_original_names_replaces_the_models_own(tiny, tmp_path, name: str) -> None:
    arch, model_name, original_names = SINGLE_FILE_CASES[name]
    base = tiny.get(arch).path
    finetuned = family(name).spec.load(base).unet
    with torch.no_grad():
        for parameter in finetuned.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    file = tmp_path / f"{name}_finetuned.safetensors"
    save_file(original_names(finetuned), str(file))
    result = plan(tiny, tmp_path, "--transformer_id", str(file), arch=arch, model_name=model_name)
    assert result.ok, result.errors
    view = Path(result.model.path)
    assert (view / "transformer" / "config.json").resolve() == (base / "transformer" / "config.json").resolve()
    loaded = family(name).spec.load(view).unet.state_dict()
    expected = finetuned.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k].float(), expected[k].float()) for k in expected)
    assert model_identity(view) != model_identity(base)


def test_hunyuan_single_blocks_split_as_diffusers_splits_them_at_full_width() -> None:
    """At the released width (3072) our split of the fused single-block tensors gives what diffusers' converter
    gives by itself, so a real file reads the same either way; other widths only read correctly with ours."""
    from diffusers.loaders.single_file_utils import convert_hunyuan_video_transformer_to_diffusers

    from backend.families.hunyuan_video.single_file import split_single_blocks

    width, mlp = 3072, 5
    state = {"single_blocks.0.linear1.weight": torch.randn(3 * width + mlp, 2),
             "single_blocks.0.linear1.bias": torch.randn(3 * width + mlp),
             "single_blocks.0.linear2.weight": torch.randn(2, 2), "single_blocks.0.q_norm.weight": torch.randn(2),
             "double_blocks.0.img_attn_qkv.weight": torch.randn(6, 2), "img_in.proj.weight": torch.randn(2, 2)}
    theirs = convert_hunyuan_video_transformer_to_diffusers(dict(state))
    ours = convert_hunyuan_video_transformer_to_diffusers(
        split_single_blocks({f"model.diffusion_model.{k}": v for k, v in state.items()},
                            {"num_attention_heads": 24, "attention_head_dim": 128}))
    assert theirs.keys() == ours.keys() and "single_transformer_blocks.0.proj_mlp.weight" in ours
    assert all(torch.equal(theirs[k], ours[k]) for k in theirs)


def test_a_single_file_that_does_not_fit_the_folders_config_is_named_with_what_to_give(tiny, tmp_path) -> None:
    from backend.models.errors import ModelFileError

    base = tiny.get("ltx-video").path
    state = ltx_original_names(family("ltx_video").spec.load(base).unet)
    state = {k: (torch.cat([v, v]) if k.endswith("patchify_proj.weight") else v) for k, v in state.items()}
    file = tmp_path / "ltx-video-13b.safetensors"
    save_file(state, str(file))
    result = plan(tiny, tmp_path, "--transformer_id", str(file), arch="ltx-video", model_name="ltx_video")
    assert result.ok, result.errors  # shapes are only known by reading the file: the load says it
    with pytest.raises(ModelFileError) as caught:
        family("ltx_video").spec.load(Path(result.model.path))
    assert "ltx-video-13b.safetensors" in str(caught.value) and "same model and size" in str(caught.value)
    hunyuan = tmp_path / "hunyuan_video_720_bf16.safetensors"
    save_file(hunyuan_original_names(family("hunyuan_video").spec.load(tiny.get("hunyuan-video").path).unet),
              str(hunyuan))
    other = plan(tiny, tmp_path, "--transformer_id", str(hunyuan), arch="ltx-video", model_name="ltx_video")
    assert any("is a HunyuanVideo transformer file; --model_name ltx_video trains LTX-Video" in e
               for e in other.errors), other.errors
    checkpoint = tmp_path / "wan.ckpt"
    checkpoint.write_bytes(b"not read")
    refused = plan(tiny, tmp_path, "--transformer_id", str(checkpoint))
    assert any("read as safetensors (.safetensors, .sft) only" in e for e in refused.errors), refused.errors
    cog = plan(tiny, tmp_path, "--model_name", "cogvideox", "--transformer_id", str(file))
    assert any("a single transformer file is read for" in e and "for cogvideox give" in e
               for e in cog.errors), cog.errors
