"""Fine-tune options, checked in-process: preflight errors and warnings, save formats, the EMA's arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from backend.options import OptionError, parse_args
from backend.training.ema import EmaWeights, ema_decay_at
from backend.training.finetune_files import ema_path, model_format
from backend.training.preflight import build_plan


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from .helpers import make_images

    folder = tmp_path_factory.mktemp("ft-options") / "imgs"
    make_images(folder, 2)
    metadata = folder.parent / "meta.json"
    metadata.write_text(json.dumps({"img0": {"caption": "a dog"}, "img1": {"caption": "a cat"}}))
    return folder, metadata


def plan_for(command: str, model: Path, dataset: tuple[Path, Path], *extra: str, in_json: bool = True):
    folder, metadata = dataset
    argv = ["--pretrained_model_name_or_path", str(model), "--train_data_dir", str(folder),
            "--output_dir", str(folder.parent / "out"), "--resolution", "64", *extra]
    if in_json:
        argv += ["--in_json", str(metadata)]
    return build_plan(parse_args(command, argv), command)


def test_a_sound_fine_tune_passes_preflight(tiny, dataset):
    plan = plan_for("fine_tune", tiny.get("sd15").path, dataset, "--train_text_encoder", "--ema")
    assert plan.ok, plan.errors
    assert plan.report["dataset"]["total_steps"] == 1600


def test_a_fine_tune_holds_out_validation_images_from_its_metadata_file(tiny, dataset):
    """sd-scripts validates LoRA runs only; here the fine-tunes take the same split (one of the two images)."""
    plan = plan_for("fine_tune", tiny.get("sd15").path, dataset, "--validation_split", "0.5")
    assert plan.ok, plan.errors
    assert plan.report["dataset"]["datasets"][0]["num_train_images"] == 1


def test_fine_tune_errors_are_listed_together(tiny, dataset):
    plan = plan_for("fine_tune", tiny.get("sd15").path, dataset, "--save_model_as", "pt", "--learning_rate", "0",
                    in_json=False)
    assert plan.errors == [
        "fine_tune trains on captions from a metadata file: give --in_json (written by merge_captions_to_metadata "
        "/ merge_dd_tags_to_metadata / prepare_buckets_latents) with --train_data_dir, or --dataset_config with "
        "metadata_file subsets",
        "nothing to train: --learning_rate is 0 (the U-Net stays frozen) and --train_text_encoder is off",
        "--save_model_as pt: a fine-tuned model is saved as one of safetensors, ckpt, diffusers, "
        "diffusers_safetensors",
    ]


def test_sdxl_text_encoder_training_excludes_cached_outputs_and_needs_a_rate(tiny, dataset):
    plan = plan_for("sdxl_train", tiny.get("sdxl").path, dataset, "--train_text_encoder",
                    "--cache_text_encoder_outputs", "--learning_rate", "0", "--learning_rate_te1", "0",
                    "--learning_rate_te2", "0")
    assert "nothing to train: --learning_rate and every text-encoder learning rate are 0" in plan.errors
    assert any(e.startswith("--train_text_encoder cannot be used with --cache_text_encoder_outputs")
               for e in plan.errors)


def test_options_without_effect_are_warned_about(tiny, dataset):
    plan = plan_for("sdxl_train", tiny.get("sdxl").path, dataset, "--learning_rate_te2", "1e-6", "--ema_decay", "0.9",
                    "--diffusers_xformers")
    assert plan.ok, plan.errors
    assert ("--learning_rate_te2: no effect while --train_text_encoder is off (the text encoders stay frozen)"
            in plan.warnings)
    assert "--ema_decay: no effect without --ema" in plan.warnings
    assert any(w.startswith("--diffusers_xformers changes nothing here") for w in plan.warnings)


def test_formats_of_the_other_method_are_refused(tiny, dataset):
    plan = plan_for("train_network", tiny.get("sd15").path, dataset, "--save_model_as", "diffusers")
    assert "--save_model_as diffusers: a LoRA is saved as one of safetensors, ckpt, pt" in plan.errors
    with pytest.raises(OptionError, match="learning_rate_te1"):
        parse_args("fine_tune", ["--learning_rate_te1", "1e-6"])  # SDXL's option


def test_deepspeed_and_fsdp_launches_are_checked(tiny, dataset, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    plan = plan_for("sdxl_train", tiny.get("sdxl").path, dataset, "--gradient_accumulation_steps", "2")
    assert plan.errors == [
        "--gradient_accumulation_steps 2 cannot be used with DeepSpeed: the trainer accumulates gradients itself; "
        "use 1 (and a larger --train_batch_size or more GPUs)",
        "DeepSpeed ZeRO stage 3 is not supported; use zero_stage 2 or FSDP (docs/multi-gpu.md)",
    ]
    plan = plan_for("train_network", tiny.get("sd15").path, dataset)
    assert plan.errors[0].startswith("accelerate is configured for DeepSpeed, which only the fine-tuning commands")
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    plan = plan_for("sdxl_train", tiny.get("sdxl").path, dataset, "--ema")
    assert plan.errors == [
        "--ema cannot be used with FSDP: they read whole weights outside the sharded forward pass; turn them off "
        "or use DeepSpeed ZeRO-2 (docs/multi-gpu.md)"
    ]


@pytest.mark.parametrize(
    ("save_model_as", "use_safetensors", "extension", "safetensors"),
    [
        ("safetensors", False, "safetensors", True),
        ("ckpt", False, "ckpt", False),
        ("ckpt", True, "safetensors", True),
        ("diffusers", False, "", False),
        ("diffusers", True, "", True),
        ("diffusers_safetensors", False, "", True),
    ],
)
def test_model_formats(save_model_as, use_safetensors, extension, safetensors):
    fmt = model_format(save_model_as, use_safetensors)
    assert (fmt.extension, fmt.safetensors, fmt.folder) == (extension, safetensors, extension == "")


def test_ema_names_sit_beside_the_model():
    assert ema_path(Path("o/tiny-step00000004.safetensors"), folder=False) == Path("o/tiny-step00000004-ema.safetensors")
    assert ema_path(Path("o/model.v2"), folder=True) == Path("o/model.v2-ema")


def test_ema_follows_the_warmed_up_decay_and_round_trips():
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    ema = EmaWeights({"unet.w": weight}, decay=0.2)
    expected = weight.detach().clone()
    for step, value in enumerate(([3.0, 0.0], [5.0, 1.0], [-1.0, 4.0])):
        with torch.no_grad():
            weight.copy_(torch.tensor(value))
        ema.update()
        decay = min(0.2, (1 + step) / (10 + step))
        assert ema_decay_at(0.2, step) == decay
        expected = decay * expected + (1 - decay) * torch.tensor(value)
    torch.testing.assert_close(ema.averaged("unet")["w"], expected)
    copy = EmaWeights({"unet.w": weight}, decay=0.2)
    copy.load_state_dict(ema.state_dict())
    assert copy.updates == 3 and torch.equal(copy.averages["unet.w"], ema.averages["unet.w"])
    with pytest.raises(ValueError, match="the saved EMA does not match the trained weights of this run"):
        EmaWeights({"text_encoder1.w": weight}, decay=0.2).load_state_dict(ema.state_dict())
