"""sdxl_train end to end on the tiny SDXL: the metadata workflow, one text encoder trained, both save layouts."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from .finetune_helpers import assert_trained, ft_flags, prepare_metadata, weights
from .helpers import run_trainer


@pytest.fixture(scope="module")
def workflow(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("fine-tune-sdxl")
    model = tiny.get("sdxl").path
    folder, metadata = prepare_metadata(root, model)
    return {"root": root, "model": model, "folder": folder, "metadata": metadata, "base": weights(model),
            "cache": tiny.get("sdxl", single_file=True).tokenizer_cache_dir}


def test_single_file_with_the_second_text_encoder_trained(workflow, tmp_path):
    result = run_trainer("sdxl_train", *ft_flags(
        workflow["model"], workflow["folder"], workflow["metadata"], tmp_path, "--max_train_steps", "2",
        "--train_text_encoder", "--learning_rate_te1", "0", "--learning_rate_te2", "5e-4", "--save_model_as", "ckpt",
        "--use_safetensors",  # sd-scripts: ckpt + --use_safetensors writes safetensors
    ))
    assert result.returncode == 0, result.stderr[-3000:]
    assert [e["step"] for e in result.of("step")] == [1, 2]
    assert len(result.of("step")[0]["lr"]) == 2  # U-Net and text encoder 2: one rate each
    path = tmp_path / "tiny.safetensors"
    assert result.of("end")[0]["output"] == str(path)
    assert_trained(weights(path, workflow["cache"]), workflow["base"], {"unet", "text_encoder2"})
    with safe_open(str(path), "pt") as file:
        metadata = file.metadata()
    assert metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base"
    assert metadata["ss_base_model_version"] == "sdxl_base_v1-0"
    assert metadata["ss_train_text_encoder"] == "True"
    assert metadata["ss_learning_rate_text_encoder2"] == "0.0005"
    assert "ss_learning_rate_text_encoder1" not in metadata


def test_diffusers_folder_loads_with_from_pretrained(workflow, tmp_path):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    result = run_trainer("sdxl_train", *ft_flags(
        workflow["model"], workflow["folder"], workflow["metadata"], tmp_path, "--max_train_steps", "4",
        "--save_model_as", "diffusers_safetensors", "--mixed_precision", "bf16", "--save_every_n_steps", "1",
        "--save_last_n_steps", "1",
    ))
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "tiny"
    # --save_last_n_steps 1 pruned the step-1 folder when step 3 was saved; nothing half-written is left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny", "tiny-step00000002", "tiny-step00000003"]
    saved = weights(folder)
    # Frozen parts ran in bf16 but are saved as loaded: the base model's weights, not a bf16 round trip.
    assert_trained(saved, workflow["base"], {"unet"})
    assert all(v.dtype == torch.float32 for v in saved["unet"].values())
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", local_files_only=True)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", local_files_only=True)
    te2 = CLIPTextModelWithProjection.from_pretrained(folder, subfolder="text_encoder_2", local_files_only=True)
    te1 = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", local_files_only=True)
    for module, name in ((unet, "unet"), (vae, "vae"), (te1, "text_encoder1"), (te2, "text_encoder2")):
        state = module.state_dict()
        assert state.keys() == saved[name].keys(), name
        assert all(torch.equal(state[k], v) for k, v in saved[name].items()), name
    # Both text encoders in transformers 4's `text_model.` layout (issue 14, item 16).
    for sub in ("text_encoder", "text_encoder_2"):
        with safe_open(str(folder / sub / "model.safetensors"), "pt") as file:
            assert all(k.startswith(("text_model.", "text_projection.")) for k in file.keys()), sub  # noqa: SIM118
