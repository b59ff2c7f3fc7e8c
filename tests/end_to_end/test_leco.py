"""LECO commands (train_leco, sdxl_train_leco) on the tiny models: preflight (the prompt file's problems and the
flags LECO refuses reported before any model loads; no dataset asked for), a LoRA that moves the model's prediction
towards the erase target, measured in diffusers; exact resume; an SDXL slider whose file diffusers loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from backend.training.command import run_command

from .helpers import listening_model, run_trainer


@pytest.mark.parametrize(("command", "arch"), [("train_leco", "sd15"), ("sdxl_train_leco", "sdxl")])
def test_preflight_reads_the_prompt_file(tiny, tmp_path: Path, capsys, command: str, arch: str) -> None:
    prompts = tmp_path / "prompts.toml"
    prompts.write_text('[[prompts]]\ntarget = "dog"\nresolution = 64\n', encoding="utf-8")
    model = tiny.get(arch)
    base = ["--pretrained_model_name_or_path", str(model.path), "--output_dir", str(tmp_path / "out"),
            "--prompts_file", str(prompts), "--preflight"]
    assert run_command(command, base) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["leco"]["settings"] == 1

    prompts.write_text('[[prompts]]\ntarget = "dog"\nresolution = 60\n', encoding="utf-8")
    assert run_command(command, [*base, "--max_train_epochs", "2", "--network_train_text_encoder_only",
                                 "--save_model_as", "diffusers"]) == 1
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert any("--max_train_epochs 2: LECO counts steps only" in error for error in errors)
    assert any("--network_train_text_encoder_only" in error for error in errors)
    assert any('[[prompts]] #1: "resolution" 60' in error for error in errors)
    assert "--save_model_as diffusers: a LoRA is saved as one of safetensors, ckpt, pt" in errors


def leco_flags(model: Path, prompts: Path, out: Path, *extra: str) -> list[str]:
    return ["--pretrained_model_name_or_path", str(model), "--prompts_file", str(prompts), "--output_dir", str(out),
            "--output_name", "leco", "--max_denoising_steps", "4", "--seed", "1", *extra]


ERASE = '[[prompts]]\ntarget = "a dog"\naction = "erase"\nresolution = 64\n'


@pytest.fixture(scope="module")
def sd_runs(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("leco-sd")
    model = listening_model(tiny.get("sd15").path, root / "model")
    prompts = root / "erase.toml"
    prompts.write_text(ERASE, encoding="utf-8")
    flags = ["--max_train_steps", "20", "--learning_rate", "1e-2", "--network_dim", "8", "--network_alpha", "8",
             "--save_every_n_steps", "10", "--save_state"]
    full = run_trainer("train_leco", *leco_flags(model, prompts, root / "full", *flags))
    assert full.returncode == 0, full.stderr[-3000:]
    resumed = run_trainer("train_leco", *leco_flags(model, prompts, root / "resumed", *flags, "--resume",
                                                    str(root / "full" / "leco-step00000010-state")))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return {"root": root, "model": model, "full": full, "resumed": resumed}


def test_the_lora_erases_the_concept_and_loads_in_diffusers(sd_runs) -> None:
    """Measured outside the trainer, in diffusers: the LoRA's prediction for "a dog" moves towards the erase target
    neutral - (positive - unconditional), built from the base model's predictions."""
    pytest.importorskip("peft")
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(sd_runs["model"]), safety_checker=None,
                                                   requires_safety_checker=False)
    embeds = {prompt: pipe.encode_prompt(prompt, "cpu", 1, False)[0] for prompt in ("a dog", "")}
    draws = [(torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(i)), t)
             for i, t in enumerate((300, 500, 700, 900))]

    def predict(prompt: str, latents: torch.Tensor, timestep: int) -> torch.Tensor:
        with torch.no_grad():
            return pipe.unet(latents, timestep, encoder_hidden_states=embeds[prompt]).sample

    targets = [2 * predict("", x, t) - predict("a dog", x, t) for x, t in draws]  # neutral = unconditional = ""

    def error() -> float:
        return float(np.mean([torch.nn.functional.mse_loss(predict("a dog", x, t), target).item()
                              for (x, t), target in zip(draws, targets, strict=True)]))

    before = error()
    pipe.load_lora_weights(str(sd_runs["root"] / "full"), weight_name="leco.safetensors")
    after = error()
    assert after < 0.5 * before, (before, after)
    losses = sd_runs["full"].losses()
    assert np.mean([losses[s] for s in range(16, 21)]) < 0.5 * np.mean([losses[s] for s in range(1, 6)]), losses


def test_resume_gives_the_uninterrupted_runs_weights(sd_runs) -> None:
    full, resumed = sd_runs["full"], sd_runs["resumed"]
    assert resumed.of("start")[0]["initial_step"] == 10
    for step, loss in resumed.losses().items():
        assert loss == pytest.approx(full.losses()[step], rel=1e-5, abs=1e-7)
    expected = load_file(sd_runs["root"] / "full" / "leco.safetensors")
    actual = load_file(sd_runs["root"] / "resumed" / "leco.safetensors")
    assert expected.keys() == actual.keys() and all(key.startswith("lora_unet_") for key in expected)
    for key, tensor in expected.items():
        torch.testing.assert_close(actual[key], tensor, rtol=1e-5, atol=1e-7)
    with safe_open(str(sd_runs["root"] / "full" / "leco.safetensors"), "pt") as file:
        metadata = file.metadata()
    assert metadata["ss_leco_prompt_count"] == "1" and metadata["ss_leco_prompts_file"] == "erase.toml"
    assert json.loads(metadata["ss_leco_preview"])[0]["target"] == "a dog"
    assert metadata["modelspec.architecture"] == "stable-diffusion-v1/lora" and metadata["ss_max_train_steps"] == "20"


def test_sdxl_slider_runs_and_its_file_loads_in_diffusers(tiny, tmp_path) -> None:
    pytest.importorskip("peft")
    from diffusers import StableDiffusionXLPipeline

    prompts = tmp_path / "slider.toml"
    prompts.write_text('guidance_scale = 1.5\nresolution = 64\nneutrals = ["", "a photo"]\n\n[[targets]]\n'
                       'target_class = "person"\npositive = "smiling person"\nnegative = "sad person"\n'
                       'dynamic_crops = true\n', encoding="utf-8")
    model = tiny.get("sdxl").path
    result = run_trainer("sdxl_train_leco", *leco_flags(model, prompts, tmp_path / "out", "--max_train_steps", "3",
                                                        "--learning_rate", "1e-2", "--min_snr_gamma", "5"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.losses()) == 3 and all(np.isfinite(list(result.losses().values())))
    with safe_open(str(tmp_path / "out" / "leco.safetensors"), "pt") as file:
        assert file.metadata()["ss_leco_prompt_count"] == "8"  # 4 directions x 2 neutrals
        assert file.metadata()["ss_base_model_version"] == "sdxl_base_v1-0"
    pipe = StableDiffusionXLPipeline.from_pretrained(str(model))

    def image() -> torch.Tensor:
        return pipe("smiling person", num_inference_steps=2, height=64, width=64,
                    generator=torch.Generator().manual_seed(0), output_type="pt").images

    before = image()
    pipe.load_lora_weights(str(tmp_path / "out"), weight_name="leco.safetensors")
    assert (image() - before).abs().max() > 1e-4
