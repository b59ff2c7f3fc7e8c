"""DreamBooth end to end on the tiny models: train_db (SD 1.5) and sdxl_train from '<repeats>_<class>' folders
with regularization images. The text encoder trains until --stop_text_encoder_training, the model learns the
instance image, --prior_loss_weight weighs the regularization images' loss, resume is exact, the files load in
diffusers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backend.families.loaded import get_spec
from backend.models.loading import load_components

from .finetune_helpers import assert_trained, same, weights
from .helpers import make_images, run_trainer

STEPS, SAVE_EVERY, STOP_TE = 8, 2, 4
TIMESTEPS = (100, 300, 500, 700, 900)


def db_flags(model: Path, root: Path, out: Path, *extra: str) -> list[str]:
    return ["--pretrained_model_name_or_path", str(model), "--train_data_dir", str(root / "train"),
            "--reg_data_dir", str(root / "reg"), "--output_dir", str(out), "--output_name", "tiny",
            "--resolution", "64", "--max_data_loader_n_workers", "0", "--seed", "3", "--learning_rate", "1e-3",
            *extra]


def make_dataset(root: Path) -> Path:
    """One instance image ('sks dog', from its folder's name) and one regularization image ('dog')."""
    [instance] = make_images(root / "train" / "5_sks dog", 1, caption=None, seed=1)
    make_images(root / "reg" / "1_dog", 1, caption=None, seed=2)
    return instance


def denoising_loss(model: Path, family: str, image: Path, caption: str, tokenizer_cache_dir: Path | None) -> float:
    """Mean MSE of the predicted noise on `image` over fixed timesteps and fixed noise, outside the trainer."""
    spec = get_spec(family)
    components = load_components(model, tokenizer_cache_dir=tokenizer_cache_dir)
    pixels = torch.from_numpy(np.asarray(Image.open(image).convert("RGB"), dtype=np.float32) / 127.5 - 1)
    pixels = pixels.permute(2, 0, 1)[None]
    scheduler = components.noise_scheduler()
    time_ids = None
    if family == "sdxl":
        from backend.families.sdxl.spec import make_time_ids

        time_ids = make_time_ids([(64, 64)], [(0, 0)], [(64, 64)])
    with torch.no_grad():
        latents = spec.encode_images(components.vae, pixels, torch.Generator().manual_seed(0))
        embeds = spec.encode_prompts(components.text_encoders, spec.tokenize(components.tokenizers, [caption]))
        losses = []
        for i, t in enumerate(TIMESTEPS):
            noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(i))
            timesteps = torch.tensor([t])
            noisy = scheduler.add_noise(latents, noise, timesteps)
            losses.append(torch.nn.functional.mse_loss(spec.predict(components.unet, noisy, timesteps, embeds,
                                                                    time_ids), noise).item())
    return float(np.mean(losses))


@pytest.fixture(scope="module")
def train_db(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("dreambooth-sd")
    instance = make_dataset(root)
    model = tiny.get("sd15").path
    flags = ["--max_train_steps", str(STEPS), "--save_every_n_steps", str(SAVE_EVERY), "--save_state",
             "--stop_text_encoder_training", str(STOP_TE), "--learning_rate_te", "5e-4"]
    full = run_trainer("train_db", *db_flags(model, root, root / "full", *flags))
    assert full.returncode == 0, full.stderr[-3000:]
    resumed = run_trainer("train_db", *db_flags(model, root, root / "resumed", *flags, "--resume",
                                                str(root / "full" / "tiny-step00000002-state")))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    cache = tiny.get("sd15", single_file=True).tokenizer_cache_dir
    return {"root": root, "model": model, "instance": instance, "full": full, "resumed": resumed,
            "base": weights(model), "cache": cache, "read": lambda path: weights(path, cache)}


def test_the_text_encoder_trains_until_the_stop_step_and_the_unet_to_the_end(train_db):
    out, read = train_db["root"] / "full", train_db["read"]
    saves = {step: read(out / f"tiny-step{step:08d}.safetensors") for step in range(SAVE_EVERY, STEPS, SAVE_EVERY)}
    saves[STEPS] = read(out / "tiny.safetensors")
    assert_trained(saves[STEPS], train_db["base"], {"unet", "text_encoder1"})
    text_encoders = {step: saved["text_encoder1"] for step, saved in saves.items()}
    assert not same(text_encoders[2], train_db["base"]["text_encoder1"])
    assert not same(text_encoders[4], text_encoders[2])  # still training in steps 3 and 4
    assert all(same(text_encoders[step], text_encoders[STOP_TE]) for step in saves if step > STOP_TE)
    assert not same(saves[6]["unet"], saves[4]["unet"]) and not same(saves[STEPS]["unet"], saves[STEPS - 2]["unet"])
    assert "text encoder training stopped at step 4" in train_db["full"].stderr
    from safetensors import safe_open

    with safe_open(str(out / "tiny.safetensors"), "pt") as file:
        assert file.metadata()["ss_train_text_encoder"] == "True"  # trained, though not to the end


def test_the_model_learns_the_instance_image(train_db):
    caption = "sks dog"  # the folder name's caption, as the trainer saw it
    before = denoising_loss(train_db["model"], "sd1", train_db["instance"], caption, None)
    after = denoising_loss(train_db["root"] / "full" / "tiny.safetensors", "sd1", train_db["instance"], caption,
                           train_db["cache"])
    assert after < 0.9 * before, (before, after)


def test_resume_across_the_stop_step_gives_the_uninterrupted_runs_weights(train_db):
    full, resumed = train_db["full"], train_db["resumed"]
    assert resumed.of("start")[0]["initial_step"] == 2
    for step, loss in resumed.losses().items():
        assert loss == pytest.approx(full.losses()[step], rel=1e-5, abs=1e-6)
    expected = train_db["read"](train_db["root"] / "full" / "tiny.safetensors")
    actual = train_db["read"](train_db["root"] / "resumed" / "tiny.safetensors")
    for part in expected:
        for key in expected[part]:
            torch.testing.assert_close(actual[part][key], expected[part][key], rtol=1e-5, atol=1e-6)


def test_prior_loss_weight_scales_the_regularization_images_loss(tiny, tmp_path):
    """One batch holds the instance and the regularization image: the first step's loss is
    (instance + w * reg) / 2, linear in w, and the same noise and timesteps are drawn whatever w is."""
    from diffusers import StableDiffusionPipeline

    make_dataset(tmp_path)
    model = tiny.get("sd15").path
    first = {}
    for weight in ("0", "1", "2"):
        result = run_trainer("train_db", *db_flags(
            model, tmp_path, tmp_path / f"out{weight}", "--max_train_steps", "1", "--train_batch_size", "2",
            "--prior_loss_weight", weight, "--stop_text_encoder_training", "-1", "--save_model_as", "diffusers"))
        assert result.returncode == 0, result.stderr[-3000:]
        first[float(weight)] = result.losses()[1]
    assert first[1.0] != pytest.approx(first[0.0], rel=1e-3)
    assert first[2.0] - first[1.0] == pytest.approx(first[1.0] - first[0.0], rel=1e-4)
    # A DreamBooth run saved as a diffusers folder loads in diffusers; -1 left the text encoder as it was.
    pipeline = StableDiffusionPipeline.from_pretrained(tmp_path / "out1" / "tiny", local_files_only=True)
    base = weights(model)
    assert same(pipeline.text_encoder.state_dict(), base["text_encoder1"])
    assert not same(pipeline.unet.state_dict(), base["unet"])


def test_train_db_options_are_checked_before_loading(tiny, tmp_path):
    from backend.options import OptionError, parse_args
    from backend.training.preflight import build_plan

    make_dataset(tmp_path)
    model = tiny.get("sd15").path
    with pytest.raises(OptionError) as refused:
        parse_args("train_db", db_flags(model, tmp_path, tmp_path / "out", "--train_text_encoder"))
    assert "train_db trains the text encoder without it; --stop_text_encoder_training -1 keeps it frozen" in str(
        refused.value)
    args = parse_args("train_db", db_flags(model, tmp_path, tmp_path / "out", "--learning_rate", "0",
                                           "--stop_text_encoder_training", "-2", "--learning_rate_te", "1e-5",
                                           "--no_token_padding"))
    plan = build_plan(args, "train_db")
    assert ("nothing to train: --learning_rate is 0 (the U-Net stays frozen) and --stop_text_encoder_training is "
            "negative" in plan.errors)  # -2 too: sd-scripts takes any negative as "never"
    assert ("--learning_rate_te: no effect while --stop_text_encoder_training is negative (the text encoders stay "
            "frozen)" in plan.warnings)
    assert any(w.startswith("--no_token_padding changes nothing") for w in plan.warnings)


def test_sdxl_dreambooth_with_regularization_images_learns_the_instance(tiny, tmp_path):
    instance = make_dataset(tmp_path)
    model = tiny.get("sdxl").path
    result = run_trainer("sdxl_train", *db_flags(
        model, tmp_path, tmp_path / "out", "--max_train_steps", str(STEPS), "--train_text_encoder",
        "--learning_rate_te1", "5e-4", "--learning_rate_te2", "5e-4", "--prior_loss_weight", "0.5"))
    assert result.returncode == 0, result.stderr[-3000:]
    cache = tiny.get("sdxl", single_file=True).tokenizer_cache_dir
    saved = weights(tmp_path / "out" / "tiny.safetensors", cache)
    assert_trained(saved, weights(model), {"unet", "text_encoder1", "text_encoder2"})
    before = denoising_loss(model, "sdxl", instance, "sks dog", None)
    after = denoising_loss(tmp_path / "out" / "tiny.safetensors", "sdxl", instance, "sks dog", cache)
    assert after < 0.9 * before, (before, after)
