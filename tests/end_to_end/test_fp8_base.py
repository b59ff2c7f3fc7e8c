"""--fp8_base / --fp8_base_unet: the frozen base model's Linear/Conv2d weights in float8."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from torch import nn

from backend.training.fp8_weights import FP8_DTYPE, store_weights_in_fp8

from .helpers import base_flags, run_trainer


def small_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.Flatten(), nn.Linear(8 * 16, 5))


def reference_with_rounded_weights(model: nn.Sequential, dtype: torch.dtype) -> nn.Sequential:
    """The same model in `dtype` with its Linear/Conv2d weights rounded through float8, as the
    float8 model computes them."""
    reference = small_model().to(dtype)
    with torch.no_grad():
        for mine, theirs in zip(model, reference, strict=True):
            if isinstance(mine, (nn.Linear, nn.Conv2d)):
                theirs.weight.copy_(mine.weight.to(dtype))
    return reference


def test_weights_are_float8_and_the_rest_keeps_the_compute_dtype() -> None:
    model = small_model()
    keys = list(model.state_dict())
    assert store_weights_in_fp8(model, torch.bfloat16) == 2
    assert model[0].weight.dtype == FP8_DTYPE and model[3].weight.dtype == FP8_DTYPE
    assert model[0].bias.dtype == torch.bfloat16 and model[1].weight.dtype == torch.bfloat16
    # Network modules find their targets by class name; files and tools by state-dict key.
    assert [type(m).__name__ for m in model] == ["Conv2d", "GroupNorm", "Flatten", "Linear"]
    assert list(model.state_dict()) == keys


def test_layers_matching_a_keep_pattern_stay_in_the_compute_dtype() -> None:
    """finetrainers' --layerwise_upcasting_skip_modules_pattern: module paths searched with each pattern."""
    model = small_model()
    assert store_weights_in_fp8(model, torch.bfloat16, ("^3$",)) == 1  # the Linear (path "3") kept
    assert model[0].weight.dtype == FP8_DTYPE and model[3].weight.dtype == torch.bfloat16
    assert model(torch.randn(1, 4, 4, 4, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_forward_upcasts_each_weight_with_and_without_autocast() -> None:
    model = small_model()
    unrounded = small_model().to(torch.bfloat16)
    store_weights_in_fp8(model, torch.bfloat16)
    reference = reference_with_rounded_weights(model, torch.bfloat16)
    x = torch.randn(2, 4, 4, 4)
    with torch.no_grad():
        plain = model(x.bfloat16())
        assert plain.dtype == torch.bfloat16
        torch.testing.assert_close(plain, reference(x.bfloat16()))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = model(x)  # float32 input: autocast decides the compute dtype
        torch.testing.assert_close(autocast.to(torch.bfloat16), plain)
        # float8 has 3 mantissa bits: close to the unrounded model, not equal to it.
        drift = (plain.float() - unrounded(x.bfloat16()).float()).abs().max()
        assert 0 < drift < 0.5


def test_gradients_match_the_rounded_model_and_only_float8_weights_are_saved() -> None:
    model = small_model().requires_grad_(False)
    store_weights_in_fp8(model, torch.float32)
    reference = reference_with_rounded_weights(model, torch.float32).requires_grad_(False)
    x = torch.randn(2, 4, 4, 4, requires_grad=True)
    saved: list[tuple[torch.dtype, tuple[int, ...]]] = []

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        saved.append((tensor.dtype, tuple(tensor.shape)))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        out = model(x)
    (out * torch.arange(5.0)).sum().backward()
    expected = x.detach().clone().requires_grad_(True)
    (reference(expected) * torch.arange(5.0)).sum().backward()
    torch.testing.assert_close(x.grad, expected.grad)
    # The backward pass keeps each weight in float8, never an upcast copy (that would undo the saving).
    weight_shapes = {tuple(model[0].weight.shape), tuple(model[3].weight.shape)}
    kept = [(dtype, shape) for dtype, shape in saved if shape in weight_shapes]
    assert kept and all(dtype == FP8_DTYPE for dtype, _ in kept)


def lora_metadata(path) -> dict[str, str]:
    with safe_open(str(path), "pt") as file:
        return file.metadata()


@pytest.mark.parametrize(("flag", "text_encoder_layers"), [("--fp8_base", True), ("--fp8_base_unet", False)])
def test_lora_trains_on_a_float8_base(tiny, train_dir, tmp_path, flag, text_encoder_layers) -> None:
    out = tmp_path / "out"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("sks dog --w 64 --h 64 --s 2 --d 1\n")
    result = run_trainer(
        "train_network",
        *base_flags(tiny.get("sd15").path, train_dir, out, "--max_train_steps", "3", "--learning_rate", "1e-3",
                    "--network_dim", "4", "--mixed_precision", "bf16", flag,
                    "--sample_prompts", str(prompts), "--sample_every_n_steps", "3"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = next(line for line in result.stderr.splitlines() if "weights stored in float8: U-Net" in line)
    assert ("text encoder 1" in report) is text_encoder_layers
    losses = list(result.losses().values())
    assert len(losses) == 3 and all(0 < loss < 10 for loss in losses)
    assert len(result.of("sample")) == 1  # the pipelines run on the float8 layers too
    metadata = lora_metadata(out / "tiny.safetensors")
    assert metadata["ss_fp8_base"] == str(flag == "--fp8_base")
    assert metadata["ss_fp8_base_unet"] == str(flag == "--fp8_base_unet")


def test_lycoris_needs_bypass_mode_on_a_float8_base(tiny, train_dir, tmp_path) -> None:
    flags = base_flags(tiny.get("sd15").path, train_dir, tmp_path, "--max_train_steps", "1", "--fp8_base",
                       "--mixed_precision", "bf16", "--network_module", "lycoris.kohya")
    refused = run_trainer("train_network", *flags, "--network_args", "algo=lokr")
    assert refused.returncode != 0
    assert "add bypass_mode=True to --network_args" in refused.stderr
    trained = run_trainer("train_network", *flags, "--network_args", "algo=lokr", "bypass_mode=True")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (tmp_path / "tiny.safetensors").is_file()
