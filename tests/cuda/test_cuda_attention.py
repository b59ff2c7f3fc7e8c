"""Attention on the device: PyTorch's SDPA kernels (flash, memory-efficient, math) for the head
sizes of the real models and of the tiny ones, the U-Net under each kernel, --mem_eff_attn (the U-Net's
SDPA restricted to the memory-efficient kernel on CUDA, unchanged on the CPU), and --xformers/--sdpa
(sd-scripts' habits: xformers when installed on CUDA, else SDPA with a warning)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from backend.families.loaded import get_spec
from backend.families.sdxl.spec import make_time_ids
from backend.models.components import PromptEmbeds
from tests.cuda.support import finite_losses, train_here
from tests.end_to_end.helpers import base_flags

# Head sizes: the tiny models' 16, SD 1.5's 40 (320 channels / 8 heads), SD 2.x's and SDXL's 64.
HEAD_DIMS = (16, 40, 64)
TOLERANCE = {torch.bfloat16: 3e-2, torch.float16: 5e-3, torch.float32: 2e-3}  # relative error vs float32 math
HALF = (torch.bfloat16, torch.float16)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.float() - expected.float()).norm() / expected.float().norm())


def attention_with_grads(q, k, v, grad) -> tuple[torch.Tensor, ...]:
    q, k, v = (t.detach().requires_grad_(True) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    out.backward(grad)
    return out.detach(), q.grad, k.grad, v.grad


@pytest.mark.cuda_only
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("backend", [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
                         ids=lambda b: b.name)
def test_sdpa_kernel_matches_float32_math(device, backend, dtype) -> None:
    """Self-attention over 256 latent tokens and cross-attention to 77 text tokens, forward and backward."""
    if backend == SDPBackend.FLASH_ATTENTION and dtype == torch.float32:
        pytest.skip("flash attention has no float32 kernel (SDPA picks another one for float32)")
    generator = torch.Generator(device=device).manual_seed(0)
    for head_dim in HEAD_DIMS:
        for keys in (256, 77):
            shape_q, shape_kv = (2, 4, 256, head_dim), (2, 4, keys, head_dim)
            q = torch.randn(shape_q, device=device, generator=generator)
            k, v = (torch.randn(shape_kv, device=device, generator=generator) for _ in range(2))
            grad = torch.randn(shape_q, device=device, generator=generator)
            with sdpa_kernel([SDPBackend.MATH]):
                expected = attention_with_grads(q, k, v, grad)
            with sdpa_kernel([backend]):  # "No available kernel" here fails: --mem_eff_attn and SDPA rely on them
                actual = attention_with_grads(*(t.to(dtype) for t in (q, k, v, grad)))
            for name, got, want in zip(("output", "dq", "dk", "dv"), actual, expected, strict=True):
                error = relative_error(got, want)
                assert error < TOLERANCE[dtype], f"head {head_dim}, {keys} keys: {name} off by {error:.2e}"


def unet_inputs(arch: str, components, device: torch.device, dtype: torch.dtype):
    spec = get_spec(components.family)
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(2, 4, 8, 8, generator=generator).to(device, dtype)
    timesteps = torch.tensor([10, 700], device=device)
    with torch.no_grad():
        embeds = spec.encode_prompts(components.text_encoders, spec.tokenize(components.tokenizers, ["a", "b c"]))
    embeds = PromptEmbeds(embeds.hidden_states.to(dtype),
                          None if embeds.pooled is None else embeds.pooled.to(dtype))
    time_ids = make_time_ids([(64, 64)] * 2, [(0, 0)] * 2, [(64, 64)] * 2) if arch == "sdxl" else None
    return spec, latents, timesteps, embeds, time_ids


@pytest.mark.cuda_only
@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_the_unet_gives_the_same_prediction_under_every_kernel(tiny, device, arch) -> None:
    components = get_spec({"sd15": "sd1", "sdxl": "sdxl"}[arch]).load(tiny.get(arch).path, dtype=torch.bfloat16)
    for module in (components.unet, *components.text_encoders):
        module.to(device).eval()
    spec, latents, timesteps, embeds, time_ids = unet_inputs(arch, components, device, torch.bfloat16)
    predictions = {}
    for backend in (SDPBackend.MATH, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
        with torch.no_grad(), sdpa_kernel([backend]):
            predictions[backend] = spec.predict(components.unet, latents, timesteps, embeds, time_ids).float()
    for backend, prediction in predictions.items():
        assert torch.isfinite(prediction).all()
        error = relative_error(prediction, predictions[SDPBackend.MATH])
        assert error < 5e-2, f"{backend.name}: {error:.2e} from the math kernel's prediction"  # bf16: ~1e-2


def kernel_flags() -> tuple[bool, bool, bool]:
    return (torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled(),
            torch.backends.cuda.math_sdp_enabled())


def test_mem_eff_attn_restricts_the_unet_to_the_memory_efficient_kernel(tiny, train_dir, tmp_path, device,
                                                                        monkeypatch) -> None:
    """Each SDPA call records which kernels it was allowed (U-Net: diffusers' AttnProcessor2_0; text
    encoders: transformers' sdpa): on CUDA the U-Net's are restricted, on the CPU the flag changes nothing."""
    allowed: list[tuple[bool, bool, bool]] = []
    default = kernel_flags()
    real = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        allowed.append(kernel_flags())
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    result = train_here("train_network", base_flags(
        tiny.get("sd15").path, train_dir, tmp_path, "--max_train_steps", "2", "--network_dim", "4",
        "--mixed_precision", "bf16", "--mem_eff_attn",
    ), device).ok().result
    finite_losses(result)
    restricted = (False, True, False)
    if device.type == "cuda":  # the U-Net's calls restricted; the text encoders' and the VAE's not
        assert set(allowed) == {restricted, default}, f"kernels allowed per SDPA call: {set(allowed)}"
    else:
        assert allowed and set(allowed) == {default}
    assert kernel_flags() == default  # the restriction ends with the step


def test_xformers_and_sdpa_flags(tiny, train_dir, tmp_path, device) -> None:
    """sd-scripts users pass --xformers (and --sdpa) out of habit: xformers where it can run, else SDPA, said once."""
    try:
        import xformers.ops  # noqa: F401

        xformers_runs = device.type == "cuda"
    except Exception:  # not installed, or built for another torch
        xformers_runs = False
    trained = train_here("train_network", base_flags(
        tiny.get("sd15").path, train_dir, tmp_path, "--max_train_steps", "2", "--network_dim", "4",
        "--mixed_precision", "bf16", "--xformers", "--sdpa",
    ), device).ok()
    finite_losses(trained.result)
    processors = {type(p).__name__ for p in trained.run.components.unet.attn_processors.values()}
    if xformers_runs:
        assert processors == {"XFormersAttnProcessor"}
        assert "--xformers:" not in trained.result.stderr
    else:
        assert processors == {"AttnProcessor2_0"}
        assert "--xformers:" in trained.result.stderr and "scaled_dot_product_attention (SDPA)" in trained.result.stderr
