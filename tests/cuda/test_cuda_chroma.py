"""Chroma on the device: its masked joint attention (padded captions) finite and equal under every SDPA
kernel that takes a mask, and a LoRA run (gradient checkpointing, cached T5 outputs, a true-CFG sample) in
bf16 and fp16 with finite losses, weights and a sample that is not one flat colour."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from backend.families.chroma.spec import ChromaSpec
from tests.cuda.support import assert_finite, finite_losses, image_varies, train_here, write_prompts
from tests.end_to_end.helpers import base_flags


@pytest.mark.cuda_only
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_masked_attention_is_finite_under_every_kernel(tiny, device, dtype) -> None:
    model = tiny.get("chroma", single_file=True)
    files = {flag: str(path) for flag, path in model.part_files.items()}
    spec = ChromaSpec(16)
    components = spec.load(model.path, files=files, tokenizer_cache_dir=model.tokenizer_cache_dir, dtype=dtype,
                           device=str(device))
    components.unet.to(device)
    components.text_encoders[0].to(device)
    ids = spec.tokenize(components.tokenizers, ["a cat", "a dog on a mat with a hat"])  # both padded
    with torch.no_grad():
        embeds = spec.encode_prompts(components.text_encoders, ids)
        latents = torch.randn(2, 16, 8, 8, device=device, dtype=dtype, generator=torch.Generator(device).manual_seed(0))
        times = torch.tensor([500.0, 250.0], device=device)
        with sdpa_kernel([SDPBackend.MATH]):
            expected = spec.predict(components.unet, latents, times, embeds).float()
        for backend in (SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION):
            try:
                with sdpa_kernel([backend]):
                    got = spec.predict(components.unet, latents, times, embeds).float()
            except RuntimeError as exc:  # a kernel this GPU/dtype has no masked variant of
                if "No available kernel" in str(exc):
                    continue
                raise
            assert torch.isfinite(got).all(), f"{backend.name}: non-finite output"
            assert float((got - expected).norm() / expected.norm()) < 3e-2, backend.name
    assert torch.isfinite(expected).all()


@pytest.mark.parametrize("precision", [
    pytest.param("bf16", id="bf16"), pytest.param("fp16", id="fp16", marks=pytest.mark.cuda_only)])
def test_a_chroma_lora_trains_on_the_device(tiny, train_dir, tmp_path, device, precision) -> None:
    model = tiny.get("chroma", single_file=True)
    out = tmp_path / "out"
    prompts = write_prompts(tmp_path, "sks dog --n blurry --w 64 --h 64 --s 2 --d 5 --l 4")
    flags = base_flags(
        model.path, train_dir, out, *model.trainer_flags()[2:], "--model_type", "chroma", "--apply_t5_attn_mask",
        "--t5xxl_max_token_length", "16", "--guidance_scale", "0.0", "--timestep_sampling", "sigmoid",
        "--network_dim", "4", "--network_alpha", "2", "--network_train_unet_only", "--gradient_checkpointing",
        "--cache_text_encoder_outputs", "--sdpa", "--max_train_steps", "3", "--learning_rate", "1e-3",
        "--mixed_precision", precision, "--sample_prompts", str(prompts), "--sample_every_n_steps", "3",
    )
    result = train_here("flux_train_network", flags, device).ok().result
    finite_losses(result)
    [sample] = result.of("sample")
    assert image_varies(Path(sample["path"])), "the sample is one flat colour"
    assert_finite(out / "tiny.safetensors")
