"""fine_tune end to end on the tiny SD 1.5: the metadata workflow, saves in both layouts, EMA, exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from .finetune_helpers import assert_trained, ft_flags, prepare_metadata, same, weights
from .helpers import run_trainer
from .sd_scripts_metadata import NETWORK_KEYS, lora_keys, ss_keys

STEPS = 4
EMA_DECAY = 0.2  # below the warm-up's (1 + n) / (10 + n) from the third update on: both branches are used


@pytest.fixture(scope="module")
def workflow(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("fine-tune-sd")
    model = tiny.get("sd15").path
    folder, metadata = prepare_metadata(root, model)
    flags = ["--max_train_steps", str(STEPS), "--save_every_n_steps", "1", "--save_state", "--ema",
             "--ema_decay", str(EMA_DECAY), "--ema_save", "beside"]
    full = run_trainer("fine_tune", *ft_flags(model, folder, metadata, root / "full", *flags))
    assert full.returncode == 0, full.stderr[-3000:]
    resumed = run_trainer("fine_tune", *ft_flags(model, folder, metadata, root / "resumed", *flags, "--resume",
                                                 str(root / "full" / "tiny-step00000002-state")))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return {"root": root, "model": model, "folder": folder, "metadata": metadata, "full": full,
            "resumed": resumed, "base": weights(model),
            "read": lambda path: weights(path, tiny.get("sd15", single_file=True).tokenizer_cache_dir)}


def test_progress_lines_are_the_lora_trainers(workflow):
    result, out = workflow["full"], workflow["root"] / "full"
    events = [e["event"] for e in result.events]
    assert events[0] == "start" and events[-1] == "end"
    assert result.of("cache") == []  # prepare_buckets_latents' files were reused as written
    assert [e["step"] for e in result.of("step")] == [1, 2, 3, 4]
    assert set(result.of("step")[0]) == {"v", "event", "t", "step", "total", "epoch", "loss", "avr_loss", "lr",
                                         "s_per_step", "eta_s"}
    models = [e["path"] for e in result.of("checkpoint") if e["kind"] == "model"]
    assert models == [str(out / f"tiny-step0000000{i}.safetensors") for i in (1, 2, 3)] + [str(out / "tiny.safetensors")]
    assert result.of("end")[0]["output"] == str(out / "tiny.safetensors")


def test_single_file_holds_the_trained_unet_and_the_base_text_encoder_and_vae(workflow):
    saved = workflow["read"](workflow["root"] / "full" / "tiny.safetensors")
    assert_trained(saved, workflow["base"], {"unet"})


def test_single_file_metadata(workflow):
    with safe_open(str(workflow["root"] / "full" / "tiny.safetensors"), "pt") as file:
        metadata = file.metadata()
    assert metadata["modelspec.architecture"] == "stable-diffusion-v1"
    assert metadata["modelspec.implementation"] == "https://github.com/Stability-AI/generative-models"
    assert metadata["modelspec.title"] == "tiny"
    assert metadata["ss_base_model_version"] == "sd_v1"
    assert (metadata["ss_steps"], metadata["ss_train_text_encoder"], metadata["ss_ema"]) == ("4", "False", "True")
    assert metadata["ss_learning_rate_unet"] == "0.001" and metadata["ss_ema_decay"] == str(EMA_DECAY)
    assert "ss_network_module" not in metadata and "ss_network_dim" not in metadata
    assert "diffusers_configs" in metadata  # our loader rebuilds the exact architecture from it
    # --in_json: the LoRA trainer's record of that mode less the network keys, plus what was trained
    # (issue 14, item 14; sd-scripts' fine_tune writes no ss_* key, so these are sd-scripts' LoRA keys).
    expected = lora_keys(dataset_config=False, network_args=False, model_file=False) - NETWORK_KEYS
    expected |= {"ss_train_unet", "ss_train_text_encoder", "ss_learning_rate_unet", "ss_ema", "ss_ema_decay"}
    assert ss_keys(metadata) == expected
    assert json.loads(metadata["ss_dataset_dirs"]) == {workflow["metadata"].name: {"n_repeats": 1, "img_count": 3}}
    # Only the entries' tags are counted, as cleaned by clean_captions_and_tags (the rating tag is dropped).
    assert json.loads(metadata["ss_tag_frequency"]) == {workflow["metadata"].name: {"long hair": 3, "shirt": 3}}
    assert json.loads(metadata["ss_bucket_info"])["buckets"]  # prepare_buckets_latents' buckets


def test_ema_matches_a_hand_computed_average(workflow):
    out = workflow["root"] / "full"
    read = workflow["read"]
    raw = [read(out / f"tiny-step0000000{i}.safetensors")["unet"] for i in (1, 2, 3)]
    raw.append(read(out / "tiny.safetensors")["unet"])
    expected = {k: v.float() for k, v in workflow["base"]["unet"].items()}
    for n, step_weights in enumerate(raw):
        decay = min(EMA_DECAY, (1 + n) / (10 + n))
        expected = {k: decay * expected[k] + (1 - decay) * step_weights[k] for k in expected}
    ema = read(out / "tiny-ema.safetensors")
    assert not same(ema["unet"], raw[-1])
    for key in expected:
        torch.testing.assert_close(ema["unet"][key], expected[key], rtol=1e-5, atol=1e-6)
    assert_trained(ema, workflow["base"], {"unet"})


def test_resume_from_a_state_gives_the_uninterrupted_runs_weights(workflow):
    root, resumed = workflow["root"], workflow["resumed"]
    assert resumed.of("start")[0]["initial_step"] == 2
    assert [e["step"] for e in resumed.of("step")] == [3, 4]
    full_losses = workflow["full"].losses()
    for step, loss in resumed.losses().items():
        assert loss == pytest.approx(full_losses[step], rel=1e-5, abs=1e-6)
    for name in ("tiny.safetensors", "tiny-ema.safetensors"):
        expected, actual = workflow["read"](root / "full" / name), workflow["read"](root / "resumed" / name)
        for part in expected:
            for key in expected[part]:
                torch.testing.assert_close(actual[part][key], expected[part][key], rtol=1e-5, atol=1e-6)


def test_diffusers_folder_with_text_encoder_training(workflow, tmp_path):
    from diffusers import StableDiffusionPipeline

    result = run_trainer("fine_tune", *ft_flags(
        workflow["model"], workflow["folder"], workflow["metadata"], tmp_path,
        "--max_train_steps", "2", "--train_text_encoder", "--learning_rate_te", "5e-4", "--save_model_as", "diffusers",
    ))
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "tiny"
    assert result.of("end")[0]["output"] == str(folder)
    assert (folder / "unet" / "diffusion_pytorch_model.bin").is_file()
    assert (folder / "text_encoder" / "pytorch_model.bin").is_file()
    assert not list(tmp_path.glob(".*tmp"))  # the folder was written aside and renamed into place
    saved = weights(folder)
    assert_trained(saved, workflow["base"], {"unet", "text_encoder1"})
    pipeline = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    for key, value in pipeline.unet.state_dict().items():
        assert torch.equal(value, saved["unet"][key]), key
    # The trained text encoder in transformers 4's layout (sd-scripts pins 4.54), which 5 reads too.
    te_keys = torch.load(folder / "text_encoder" / "pytorch_model.bin", weights_only=True).keys()
    assert all(key.startswith("text_model.") for key in te_keys)
    for key, value in pipeline.text_encoder.state_dict().items():
        assert torch.equal(value, saved["text_encoder1"][key]), key
