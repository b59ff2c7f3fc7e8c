"""A full fine-tune's memory savers on the device: --fused_backward_pass (each weight stepped by its own
fused-AdamW call from a gradient hook while the backward pass runs, its gradient freed) trains what
the ordinary step trains, and the EMA (float32 averages on the GPU, saved beside) is written finite."""

from __future__ import annotations

import pytest
import torch

from tests.cuda.support import finite_losses, train_here
from tests.end_to_end.finetune_helpers import ft_flags, prepare_metadata, weights

COMMON = ("--max_train_steps", "3", "--mixed_precision", "bf16", "--max_grad_norm", "0",  # fused: per-weight clipping
          "--ema", "--ema_decay", "0.5", "--ema_save", "beside")


def test_fused_backward_pass_trains_as_the_plain_step_with_ema(tiny, tmp_path, device) -> None:
    model = tiny.get("sd15").path
    folder, metadata = prepare_metadata(tmp_path / "data", model)
    plain = train_here("fine_tune", ft_flags(model, folder, metadata, tmp_path / "plain", *COMMON), device).ok()
    fused = train_here("fine_tune", ft_flags(model, folder, metadata, tmp_path / "fused", *COMMON,
                                             "--fused_backward_pass"), device).ok()
    assert fused.run.fused_backward is not None
    assert finite_losses(fused.result) == pytest.approx(finite_losses(plain.result), rel=1e-3)
    cache = tiny.get("sd15", single_file=True).tokenizer_cache_dir
    for name in ("tiny.safetensors", "tiny-ema.safetensors"):
        expected = weights(tmp_path / "plain" / name, cache)["unet"]
        actual = weights(tmp_path / "fused" / name, cache)["unet"]
        for key, value in expected.items():
            assert torch.isfinite(actual[key]).all(), (name, key)
            torch.testing.assert_close(actual[key], value, rtol=1e-3, atol=1e-5, msg=f"{name}: {key}")
    base = weights(model)["unet"]
    assert any(not torch.equal(base[key], value) for key, value in weights(tmp_path / "fused" / "tiny.safetensors",
                                                                            cache)["unet"].items())
