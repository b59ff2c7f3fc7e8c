"""Trained weights in half precision (--full_fp16, --full_bf16). fp16 mixed precision scales the loss
with a GradScaler, which refuses float16 gradients unless the trainer lets it (loss_scaling.py):
without that, --full_fp16 failed at its first optimizer step on every CUDA GPU."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from backend.training.loss_scaling import allow_half_gradients
from tests.cuda.support import assert_finite, differs, finite_losses, train_here
from tests.end_to_end.finetune_helpers import assert_trained, ft_flags, prepare_metadata, weights
from tests.end_to_end.helpers import base_flags


class ScalerHolder:  # what allow_half_gradients reads of an Accelerator
    def __init__(self, scaler: torch.amp.GradScaler | None) -> None:
        self.scaler = scaler


def scaled_step(scaler: torch.amp.GradScaler, device: torch.device) -> torch.Tensor:
    param = torch.nn.Parameter(torch.ones(8, dtype=torch.float16, device=device))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scaler.scale((param.float() * 2).sum()).backward()  # gradient 2, scaled
    scaler.step(optimizer)
    scaler.update()
    return param.detach()


def test_the_scaler_unscales_float16_gradients_once_allowed(device) -> None:
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        scaled_step(torch.amp.GradScaler(device.type, init_scale=1024.0), device)
    scaler = torch.amp.GradScaler(device.type, init_scale=1024.0)
    assert allow_half_gradients(ScalerHolder(scaler))
    stepped = scaled_step(scaler, device)
    torch.testing.assert_close(stepped, torch.full_like(stepped, 0.8))  # 1 - 0.1 x the unscaled gradient 2
    assert scaler.get_scale() == 1024.0  # no overflow found, nothing skipped
    assert not allow_half_gradients(ScalerHolder(None))  # bf16 / fp32 / CPU: no scaler, nothing to do


def lora_dtypes(path) -> set[torch.dtype]:
    with safe_open(str(path), "pt") as file:
        return {file.get_tensor(key).dtype for key in file.keys() if not key.endswith(".alpha")}  # noqa: SIM118


@pytest.mark.parametrize(("precision", "flag", "dtype"), [
    pytest.param("fp16", "--full_fp16", torch.float16, id="full_fp16", marks=pytest.mark.cuda_only),
    pytest.param("bf16", "--full_bf16", torch.bfloat16, id="full_bf16"),
])
def test_lora_with_half_precision_weights(tiny, train_dir, tmp_path, device, precision, flag, dtype) -> None:
    out = tmp_path / "out"
    result = train_here("train_network", base_flags(
        tiny.get("sd15").path, train_dir, out, "--max_train_steps", "3", "--learning_rate", "1e-3",
        "--network_dim", "4", "--mixed_precision", precision, flag, "--save_every_n_steps", "1",
    ), device).ok().result
    finite_losses(result)
    final = out / "tiny.safetensors"
    assert_finite(final)
    assert lora_dtypes(final) == {dtype}, "the network's weights were not trained in half precision"
    assert differs(out / "tiny-step00000001.safetensors", final)


@pytest.mark.cuda_only
def test_fine_tune_with_full_fp16(tiny, tmp_path, device) -> None:
    model = tiny.get("sd15").path
    folder, metadata = prepare_metadata(tmp_path / "data", model)
    out = tmp_path / "out"
    result = train_here("fine_tune", ft_flags(model, folder, metadata, out, "--max_train_steps", "2",
                                              "--mixed_precision", "fp16", "--full_fp16"), device).ok().result
    finite_losses(result)
    saved = weights(out / "tiny.safetensors", tiny.get("sd15", single_file=True).tokenizer_cache_dir)
    assert all(torch.isfinite(value).all() for value in saved["unet"].values() if value.is_floating_point())
    assert_trained(saved, weights(model), {"unet"})
