"""--fp8_base / --fp8_base_unet on the device: float8 weights upcast per layer under CUDA autocast in
bf16 and fp16 (forward and backward as the model with rounded weights computes them), the frozen
weights really stored in float8 on the GPU, and LoRA runs on such a base, --lowram included (the
weights are read straight to the GPU and converted there)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backend.training.fp8_weights import FP8_DTYPE, store_weights_in_fp8
from tests.cuda.support import assert_finite, differs, finite_losses, train_here
from tests.end_to_end.helpers import base_flags
from tests.end_to_end.test_fp8_base import reference_with_rounded_weights, small_model

PRECISIONS = [
    pytest.param("bf16", torch.bfloat16, id="bf16"),
    pytest.param("fp16", torch.float16, id="fp16", marks=pytest.mark.cuda_only),
]


@pytest.mark.parametrize(("precision", "dtype"), PRECISIONS)
def test_float8_layers_under_autocast_match_the_rounded_model(device, precision, dtype) -> None:
    model = small_model().requires_grad_(False)
    store_weights_in_fp8(model, dtype)
    reference = reference_with_rounded_weights(model, dtype).requires_grad_(False)
    model.to(device)
    reference.to(device)
    x = torch.randn(2, 4, 4, 4, device=device)
    weights = torch.arange(5.0, device=device)
    grads = []
    for net in (model, reference):
        inputs = x.clone().requires_grad_(True)
        with torch.autocast(device.type, dtype=dtype):
            out = net(inputs)
        assert out.dtype == dtype
        (out.float() * weights).sum().backward()
        grads.append((out.detach().float(), inputs.grad))
    assert model[0].weight.dtype == FP8_DTYPE and model[0].weight.device.type == device.type
    (out_fp8, grad_fp8), (out_ref, grad_ref) = grads
    torch.testing.assert_close(out_fp8, out_ref, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(grad_fp8, grad_ref, rtol=1e-2, atol=1e-2)


def float8_layers(module: nn.Module, device_type: str) -> tuple[int, int]:
    """(Linear/Conv2d layers with float8 weights on `device_type`, all Linear/Conv2d layers)."""
    layers = [m for m in module.modules() if type(m) in (nn.Linear, nn.Conv2d)]
    fp8 = [m for m in layers if m.weight.dtype == FP8_DTYPE and m.weight.device.type == device_type]
    return len(fp8), len(layers)


@pytest.mark.parametrize(("precision", "dtype"), PRECISIONS)
@pytest.mark.parametrize(("arch", "flag"), [("sd15", "--fp8_base"), ("sdxl", "--fp8_base_unet")])
def test_lora_trains_on_a_float8_base(tiny, train_dir, tmp_path, device, arch, flag, precision, dtype) -> None:
    placed: dict[str, object] = {}

    def observe(run) -> None:
        placed["unet"] = float8_layers(run.components.unet, device.type)
        placed["te"] = [float8_layers(te, device.type) for te in run.components.text_encoders]
        placed["network"] = {(p.dtype, p.device.type) for p in run.method.network.parameters()}

    out = tmp_path / "out"
    command = "sdxl_train_network" if arch == "sdxl" else "train_network"
    result = train_here(command, base_flags(
        tiny.get(arch).path, train_dir, out, "--max_train_steps", "3", "--learning_rate", "1e-3",
        "--network_dim", "4", "--mixed_precision", precision, flag, "--save_every_n_steps", "1",
    ), device, observe).ok().result
    converted, total = placed["unet"]
    assert converted == total > 0, f"{converted} of {total} U-Net layers in float8 on {device.type}"
    for converted, total in placed["te"]:
        assert converted == (total if flag == "--fp8_base" else 0)
    assert placed["network"] == {(torch.float32, device.type)}  # the LoRA trains at full precision
    finite_losses(result)
    assert_finite(out / "tiny.safetensors")
    assert differs(out / "tiny-step00000001.safetensors", out / "tiny.safetensors")


def test_lowram_float8_base_from_a_single_file(tiny, train_dir, tmp_path, device) -> None:
    model = tiny.get("sd15", single_file=True)
    placed: dict[str, tuple[int, int]] = {}
    result = train_here("train_network", base_flags(
        model.path, train_dir, tmp_path, *model.trainer_flags()[2:], "--max_train_steps", "2", "--network_dim", "4",
        "--mixed_precision", "bf16", "--fp8_base", "--lowram",
    ), device, lambda run: placed.update(unet=float8_layers(run.components.unet, device.type))).ok().result
    finite_losses(result)
    converted, total = placed["unet"]
    assert converted == total > 0
    assert_finite(tmp_path / "tiny.safetensors")
