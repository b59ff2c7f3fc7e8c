"""The trainer learns: after a short overfit run on one image, the LoRA lowers that image's
denoising loss at fixed timesteps and noise, measured outside the trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from backend.families.loaded import get_spec
from backend.networks.loader import create_network_from_weights, load_network_module

from .helpers import base_flags, make_images, run_trainer

TIMESTEPS = (100, 300, 500, 700, 900)


def denoising_loss(model: Path, lora: Path, image: Path, caption: str, multiplier: float) -> float:
    """Mean MSE of the predicted noise over fixed timesteps and fixed noise."""
    torch.manual_seed(0)
    spec = get_spec("sd1")
    components = spec.load(model)
    text_encoder, unet = components.text_encoders[0], components.unet
    network, _ = create_network_from_weights(
        load_network_module("networks.lora"), multiplier, lora, components.vae, text_encoder, unet
    )
    network.apply_to(text_encoder, unet, True, True)
    network.load_weights(lora)
    network.set_multiplier(multiplier)
    network.eval()
    pixels = torch.from_numpy(np.asarray(Image.open(image).convert("RGB"), dtype=np.float32) / 127.5 - 1)
    pixels = pixels.permute(2, 0, 1)[None]
    scheduler = components.noise_scheduler()
    with torch.no_grad():
        latents = spec.encode_images(components.vae, pixels, torch.Generator().manual_seed(0))
        embeds = spec.encode_prompts([text_encoder], spec.tokenize(components.tokenizers, [caption]))
        losses = []
        for i, t in enumerate(TIMESTEPS):
            noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(i))
            timesteps = torch.tensor([t])
            noisy = scheduler.add_noise(latents, noise, timesteps)
            prediction = spec.predict(unet, noisy, timesteps, embeds)
            losses.append(torch.nn.functional.mse_loss(prediction, noise).item())
    return float(np.mean(losses))


def test_short_overfit_run_lowers_the_denoising_loss(tiny, tmp_path):
    train_dir = tmp_path / "train"
    [image] = make_images(train_dir / "1_sks", 1, caption="sks")
    caption = image.with_suffix(".txt").read_text()
    model = tiny.get("sd15").path
    result = run_trainer(
        "train_network",
        *base_flags(model, train_dir, tmp_path / "out", "--max_train_steps", "40", "--learning_rate", "3e-3",
                    "--network_dim", "8", "--network_alpha", "8", "--network_train_unet_only"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lora = tmp_path / "out" / "tiny.safetensors"
    before = denoising_loss(model, lora, image, caption, multiplier=0.0)
    after = denoising_loss(model, lora, image, caption, multiplier=1.0)
    print(f"denoising loss without LoRA {before:.4f}, with {after:.4f}")
    assert after < 0.8 * before, (before, after)
