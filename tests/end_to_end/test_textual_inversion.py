"""Textual Inversion end to end on the tiny models: train_textual_inversion (SD 1.5) and
sdxl_train_textual_inversion. Only the new word's vectors train; the model learns the image through them; resume
is exact; the files load in diffusers; --weights continues a file; the options are checked before loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from backend.families.loaded import get_spec
from backend.models.loading import load_components

from .helpers import listening_model, make_images, run_trainer

TOKEN, INIT = "mytok", "dog"
TIMESTEPS = (100, 300, 500, 700, 900)


def ti_flags(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["--pretrained_model_name_or_path", str(model), "--train_data_dir", str(data), "--output_dir", str(out),
            "--resolution", "64", "--caption_extension", ".txt", "--max_data_loader_n_workers", "0", "--seed", "3",
            "--token_string", TOKEN, "--init_word", INIT, "--learning_rate", "5e-3", *extra]


def with_vectors(model: Path, vectors: list[torch.Tensor]):
    """The base model's components with the word added and given `vectors` (one tensor per text encoder)."""
    components = load_components(model)
    words = [TOKEN] + [f"{TOKEN}{i}" for i in range(1, vectors[0].shape[0])]
    for tokenizer, encoder, rows in zip(components.tokenizers, components.text_encoders, vectors, strict=True):
        tokenizer.add_tokens(words)
        encoder.resize_token_embeddings(len(tokenizer))
        with torch.no_grad():
            encoder.get_input_embeddings().weight[-len(words):] = rows
    return components


def denoising_loss(model: Path, family: str, image: Path, vectors: list[torch.Tensor]) -> float:
    """Mean MSE of the predicted noise on `image` captioned with the word, fixed timesteps and noise."""
    spec = get_spec(family)
    components = with_vectors(model, vectors)
    pixels = torch.from_numpy(np.asarray(Image.open(image).convert("RGB"), dtype=np.float32) / 127.5 - 1)
    scheduler = components.noise_scheduler()
    with torch.no_grad():
        latents = spec.encode_images(components.vae, pixels.permute(2, 0, 1)[None], torch.Generator().manual_seed(0))
        caption = "a photo of " + " ".join([TOKEN] + [f"{TOKEN}{i}" for i in range(1, vectors[0].shape[0])])
        embeds = spec.encode_prompts(components.text_encoders, spec.tokenize(components.tokenizers, [caption]))
        losses = []
        for i, t in enumerate(TIMESTEPS):
            noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(i))
            noisy = scheduler.add_noise(latents, noise, torch.tensor([t]))
            predicted = spec.predict(components.unet, noisy, torch.tensor([t]), embeds)
            losses.append(torch.nn.functional.mse_loss(predicted, noise).item())
    return float(np.mean(losses))


def init_vectors(model: Path, count: int) -> list[torch.Tensor]:
    """--init_word's vectors, repeated to `count` (what the run starts from)."""
    components = load_components(model)
    found = []
    for tokenizer, encoder in zip(components.tokenizers, components.text_encoders, strict=True):
        ids = tokenizer.encode(INIT, add_special_tokens=False)
        weight = encoder.get_input_embeddings().weight.detach()
        found.append(torch.stack([weight[ids[i % len(ids)]] for i in range(count)]))
    return found


@pytest.fixture(scope="module")
def sd_runs(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("ti-sd")
    [image] = make_images(root / "data" / "10_toy", 1, caption=f"a photo of {TOKEN}", seed=4)
    model = listening_model(tiny.get("sd15").path, root / "model")
    flags = ["--max_train_steps", "16", "--save_every_n_steps", "8", "--save_state", "--num_vectors_per_token", "2",
             "--save_model_as", "pt"]
    full = run_trainer("train_textual_inversion", *ti_flags(model, root / "data", root / "full", *flags))
    assert full.returncode == 0, full.stderr[-3000:]
    resumed = run_trainer("train_textual_inversion", *ti_flags(
        model, root / "data", root / "resumed", *flags, "--resume", str(root / "full" / f"{TOKEN}-step00000008-state")))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return {"root": root, "model": model, "image": image, "full": full, "resumed": resumed}


def test_the_vectors_learn_the_image_and_the_file_is_named_after_the_word(sd_runs):
    out = sd_runs["root"] / "full"
    saved = torch.load(out / f"{TOKEN}.pt", weights_only=True)  # sd-scripts' default format
    assert set(saved) == {"emb_params"} and tuple(saved["emb_params"].shape) == (2, 32)
    start = init_vectors(sd_runs["model"], 2)
    assert not torch.allclose(saved["emb_params"], start[0])
    before = denoising_loss(sd_runs["model"], "sd1", sd_runs["image"], start)
    after = denoising_loss(sd_runs["model"], "sd1", sd_runs["image"], [saved["emb_params"]])
    assert after < 0.99 * before, (before, after)


def test_resume_gives_the_uninterrupted_runs_vectors(sd_runs):
    full, resumed = sd_runs["full"], sd_runs["resumed"]
    assert resumed.of("start")[0]["initial_step"] == 8
    for step, loss in resumed.losses().items():
        assert loss == pytest.approx(full.losses()[step], rel=1e-5, abs=1e-6)
    expected = torch.load(sd_runs["root"] / "full" / f"{TOKEN}.pt", weights_only=True)["emb_params"]
    actual = torch.load(sd_runs["root"] / "resumed" / f"{TOKEN}.pt", weights_only=True)["emb_params"]
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_a_saved_embedding_loads_in_diffusers(sd_runs):
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline.from_pretrained(sd_runs["model"], local_files_only=True)
    before = len(pipeline.tokenizer)
    pipeline.load_textual_inversion(str(sd_runs["root"] / "full" / f"{TOKEN}-step00000008.pt"), token=TOKEN)
    assert len(pipeline.tokenizer) == before + 2
    saved = torch.load(sd_runs["root"] / "full" / f"{TOKEN}-step00000008.pt", weights_only=True)["emb_params"]
    torch.testing.assert_close(pipeline.text_encoder.get_input_embeddings().weight[-2:], saved)


def test_only_the_new_rows_change_and_weights_continue_a_file(tiny, tmp_path):
    """One optimizer step on the method itself: every row the tokenizer knew is put back; --weights starts the
    new rows from a file (A1111's string_to_param format here)."""
    from backend.training.embedding_method import EmbeddingTraining
    from backend.training.method_options import EmbeddingConfig

    start = torch.randn(2, 32)
    torch.save({"string_to_param": {"*": start}, "name": "old"}, tmp_path / "old.pt")
    config = EmbeddingConfig(TOKEN, INIT, 2, str(tmp_path / "old.pt"), False, False, 1e-1, "safetensors", False)
    components = load_components(tiny.get("sd15").path)
    method = EmbeddingTraining(config, components)
    torch.testing.assert_close(method.vectors()["emb_params"], start)
    method.keep_original_rows()
    weight = components.text_encoders[0].get_input_embeddings().weight
    before = weight.detach().clone()
    optimizer = torch.optim.AdamW(method.param_groups()[0], weight_decay=0.1)
    ids = components.tokenizers[0](f"a photo of {TOKEN} {TOKEN}1", return_tensors="pt").input_ids
    components.text_encoders[0](ids).last_hidden_state.square().mean().backward()
    assert weight.grad[: -2].abs().sum() > 0  # the known words' rows get gradients too (and weight decay)
    optimizer.step()
    method.after_optimizer_step(torch.device("cpu"))
    assert torch.equal(weight[:-2], before[:-2])
    assert not torch.equal(weight[-2:], before[-2:])


def test_sdxl_embedding_with_templates_loads_in_diffusers(tiny, tmp_path):
    from diffusers import StableDiffusionXLPipeline

    make_images(tmp_path / "data" / "1_toy", 1, caption="no word here", seed=4)  # the templates replace it
    model = tiny.get("sdxl").path
    result = run_trainer("sdxl_train_textual_inversion", *ti_flags(
        model, tmp_path / "data", tmp_path / "out", "--max_train_steps", "2", "--use_object_template", "--fp8_base"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "weights stored in float8: U-Net" in result.stderr  # the frozen U-Net; the text encoders are trained
    path = tmp_path / "out" / f"{TOKEN}.safetensors"
    vectors = load_file(path)
    assert {k: tuple(v.shape) for k, v in vectors.items()} == {"clip_l": (1, 32), "clip_g": (1, 64)}
    start = init_vectors(model, 1)
    assert not torch.allclose(vectors["clip_l"], start[0]) and not torch.allclose(vectors["clip_g"], start[1])
    with safe_open(str(path), "pt") as file:
        metadata = file.metadata()
    assert metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base/textual-inversion"
    assert metadata["ss_token_string"] == TOKEN and "ss_network_dim" not in metadata
    pipeline = StableDiffusionXLPipeline.from_pretrained(model, local_files_only=True)
    pipeline.load_textual_inversion(vectors["clip_l"], token=TOKEN, text_encoder=pipeline.text_encoder,
                                    tokenizer=pipeline.tokenizer)
    pipeline.load_textual_inversion(vectors["clip_g"], token=TOKEN, text_encoder=pipeline.text_encoder_2,
                                    tokenizer=pipeline.tokenizer_2)
    torch.testing.assert_close(pipeline.text_encoder_2.get_input_embeddings().weight[-1:], vectors["clip_g"])


def test_options_are_checked_before_loading(tiny, tmp_path):
    from backend.options import OptionError, parse_args
    from backend.training.embedding_method import add_tokens
    from backend.training.method_options import EmbeddingConfig
    from backend.training.preflight import build_plan
    from backend.training.run_errors import RunStopped

    make_images(tmp_path / "data" / "1_toy", 2, caption="a photo of a toy", seed=4)
    model = tiny.get("sd15").path
    flags = ti_flags(model, tmp_path / "data", tmp_path / "out")
    with pytest.raises(OptionError, match="token_string"):
        parse_args("train_textual_inversion", [f for f in flags if f not in ("--token_string", TOKEN)])
    plan = build_plan(parse_args("train_textual_inversion", [*flags, "--save_model_as", "diffusers"]),
                      "train_textual_inversion")
    assert "--save_model_as diffusers: an embedding is saved as one of safetensors, pt, ckpt" in plan.errors
    assert any(e.startswith("no caption of the 2 training images holds --token_string 'mytok'") for e in plan.errors)
    plan = build_plan(parse_args("train_textual_inversion", [*flags, "--use_style_template"]),
                      "train_textual_inversion")
    assert plan.ok, plan.errors
    known = EmbeddingConfig("door", None, 1, None, False, False, 1e-3, "pt", False)
    with pytest.raises(RunStopped, match="already knows 'door'"):
        add_tokens(known, load_components(model))
