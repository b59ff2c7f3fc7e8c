"""--blocks_to_swap on FLUX.1 and SD 3.5 LoRA runs (KOHYA_BLOCK_SWAP_ON_CPU=1 runs the swap on this CPU machine):
the LoRA trained with blocks swapped is the one trained without, and bad values are refused up front."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
import torch
from safetensors.torch import load_file

from devtools.make_tiny_model import TinyModel, make_tiny_model
from devtools.tiny_model_configs import TINY_FLUX, TINY_SD3

from .helpers import base_flags, run_trainer

# Per family: the command, the tiny model's arch, its deeper block counts (sd-scripts keeps two blocks of each
# group on the GPU, so the usual tiny models allow no swapping), the N to swap, the log line it gives, the
# largest N allowed and the model's label; and whether the LoRA is the same to the bit (SD 3.5: up to float
# rounding, see tests/training/test_block_swap.py).
CASES = {
    "flux": ("flux_train_network", "flux-schnell", TINY_FLUX, {"num_layers": 4, "num_single_layers": 6}, 2,
             "block swap: 3 of 10 transformer blocks (1 + 2) wait in RAM", 4, "FLUX.1 [schnell]", True),
    "sd3": ("sd3_train_network", "sd3-medium", TINY_SD3, {"num_layers": 4}, 2,
            "block swap: 2 of 4 transformer blocks (2) wait in RAM", 2, "SD 3.5 Medium", False),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def deeper(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, TinyModel]:
    """The family's tiny folder with more blocks (FLUX.1: 4 double and 6 single, up to 4 swapped; SD 3.5: 4
    joint blocks, up to 2)."""
    case = request.param
    _, arch, configs, deeper_sizes, *_ = CASES[case]
    with mock.patch.dict(configs, deeper_sizes):
        return case, make_tiny_model(arch, tmp_path_factory.mktemp(f"deeper-{case}") / "model", seed=1)


def lora_run(case: str, model: TinyModel, train_dir: Path, out: Path, *extra: str):
    command = CASES[case][0]
    flags = base_flags(
        model.path, train_dir, out, "--network_module", "networks.lora", "--network_dim", "4",
        "--network_train_unet_only", "--max_train_steps", "2", "--learning_rate", "1e-2", "--optimizer_type", "AdamW",
        "--save_model_as", "safetensors", "--t5xxl_max_token_length", "16", "--cache_latents", *extra,
    )
    return run_trainer(command, *flags)


def test_a_lora_trained_with_swapped_blocks_equals_one_trained_without(deeper, train_dir, tmp_path, monkeypatch):
    case, model = deeper
    _, _, _, _, blocks_to_swap, log_line, _, _, exact = CASES[case]
    monkeypatch.setenv("KOHYA_BLOCK_SWAP_ON_CPU", "1")
    plain = lora_run(case, model, train_dir, tmp_path / "plain")
    assert plain.returncode == 0, plain.stderr[-3000:]
    swapped = lora_run(case, model, train_dir, tmp_path / "swapped", "--blocks_to_swap", str(blocks_to_swap),
                       "--gradient_checkpointing")
    assert swapped.returncode == 0, swapped.stderr[-3000:]
    assert log_line in swapped.stderr
    expected = load_file(tmp_path / "plain" / "tiny.safetensors")
    got = load_file(tmp_path / "swapped" / "tiny.safetensors")
    assert expected.keys() == got.keys()
    if exact:
        assert all(torch.equal(got[key], expected[key]) for key in expected), "same seed, same LoRA"
        assert swapped.losses() == plain.losses()
    else:
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-6, msg=key)
        assert swapped.losses() == pytest.approx(plain.losses(), rel=1e-5)


def test_too_many_blocks_and_no_cuda(deeper, train_dir, tmp_path, monkeypatch):
    case, model = deeper
    limit, label = CASES[case][6], CASES[case][7]
    monkeypatch.setenv("KOHYA_BLOCK_SWAP_ON_CPU", "1")
    result = lora_run(case, model, train_dir, tmp_path / "many", "--blocks_to_swap", str(limit + 1), "--preflight")
    assert result.returncode == 1, "refused before the model is loaded (the folder's config has the block counts)"
    assert f"--blocks_to_swap {limit + 1}: this {label} model allows at most {limit}" in result.stdout
    if case != "flux":
        return  # the warning is the family's no more than the command's
    monkeypatch.delenv("KOHYA_BLOCK_SWAP_ON_CPU")
    result = lora_run(case, model, train_dir, tmp_path / "nocuda", "--blocks_to_swap", "2", "--preflight")
    assert result.returncode == 0
    assert "no CUDA GPU, so nothing is swapped" in result.stdout


FINE_TUNE_COMMANDS = {"flux": "flux_train", "sd3": "sd3_train"}


def fine_tune_run(case: str, model: TinyModel, train_dir: Path, out: Path, *extra: str):
    flags = base_flags(
        model.path, train_dir, out, "--max_train_steps", "2", "--learning_rate", "0.5", "--optimizer_type", "SGDNesterov",
        "--save_model_as", "safetensors", "--t5xxl_max_token_length", "16", "--cache_latents",
        "--gradient_checkpointing", *extra,
    )
    return run_trainer(FINE_TUNE_COMMANDS[case], *flags)


def test_a_fused_fine_tune_with_swapped_blocks_saves_the_model_the_plain_one_saves(deeper, train_dir, tmp_path,
                                                                                   monkeypatch):
    case, model = deeper
    _, _, _, _, blocks_to_swap, log_line, *_ = CASES[case]
    monkeypatch.setenv("KOHYA_BLOCK_SWAP_ON_CPU", "1")
    refused = fine_tune_run(case, model, train_dir, tmp_path / "unfused", "--blocks_to_swap", "2", "--preflight")
    assert refused.returncode == 1
    assert "--blocks_to_swap in a fine-tune needs --fused_backward_pass" in refused.stdout
    if case != "flux":
        return  # the swapped fine-tune itself: flux_train here, both families in tests/training/test_block_swap.py
    plain = fine_tune_run(case, model, train_dir, tmp_path / "plain", "--fused_backward_pass")
    assert plain.returncode == 0, plain.stderr[-3000:]
    swapped = fine_tune_run(case, model, train_dir, tmp_path / "swapped", "--fused_backward_pass",
                            "--blocks_to_swap", str(blocks_to_swap))
    assert swapped.returncode == 0, swapped.stderr[-3000:]
    assert log_line in swapped.stderr
    expected = load_file(tmp_path / "plain" / "tiny.safetensors")
    got = load_file(tmp_path / "swapped" / "tiny.safetensors")
    assert expected.keys() == got.keys()
    for key in expected:
        # SGD: an update is proportional to its gradient, so the rounding of the swapped run's gradients stays
        # rounding (Adam would make a near-zero gradient's noise a full step); a swapped block's steps lost on
        # the way back to RAM would be far outside these tolerances.
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)
    assert swapped.losses() == pytest.approx(plain.losses(), rel=1e-4)
