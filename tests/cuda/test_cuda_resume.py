"""--resume on the device gives what the uninterrupted run gives: a state saved mid-epoch at step 2
(weights, optimizer, RNG states, and in fp16 the GradScaler's scale) continues to the same losses and
the same final LoRA as the run that never stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.cuda.support import tensors, train_here
from tests.end_to_end.helpers import base_flags

PRECISIONS = [pytest.param("bf16", id="bf16"), pytest.param("fp16", id="fp16", marks=pytest.mark.cuda_only)]
# GPU kernels may sum in another order from one launch to the next (atomics in some convolution
# backward passes): close, not necessarily bit-identical.
TOLERANCE = {"rtol": 1e-3, "atol": 1e-5}


def flags(model: Path, train_dir: Path, out: Path, precision: str, *extra: str) -> list[str]:
    return base_flags(model, train_dir, out, "--max_train_steps", "4", "--learning_rate", "1e-3",
                      "--network_dim", "4", "--mixed_precision", precision, "--save_every_n_steps", "2",
                      "--save_state", "--save_state_on_train_end", *extra)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_resumed_run_matches_the_uninterrupted_one(tiny, train_dir, tmp_path, device, precision) -> None:
    model = tiny.get("sd15").path
    full = train_here("train_network", flags(model, train_dir, tmp_path / "full", precision), device).ok().result
    state = tmp_path / "full" / "tiny-step00000002-state"
    resumed = train_here("train_network", flags(model, train_dir, tmp_path / "resumed", precision, "--resume",
                                                str(state)), device).ok().result

    assert resumed.of("start")[0]["initial_step"] == 2
    assert [e["step"] for e in resumed.of("step")] == [3, 4]
    full_losses, resumed_losses = full.losses(), resumed.losses()
    for step in (3, 4):
        assert resumed_losses[step] == pytest.approx(full_losses[step], rel=1e-3), step
    expected = tensors(tmp_path / "full" / "tiny.safetensors")
    actual = tensors(tmp_path / "resumed" / "tiny.safetensors")
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], **TOLERANCE, msg=key)
    if precision == "fp16":  # the loss scale went on from the saved one, as in the uninterrupted run
        scales = [torch.load(tmp_path / run / "tiny-state" / "scaler.pt", weights_only=True)
                  for run in ("full", "resumed")]
        assert scales[0] == scales[1]
