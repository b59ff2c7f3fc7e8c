"""Preflight warns when a learning rate suits the other kind of run (issue 14, item 19)."""

from __future__ import annotations

import pytest

from backend.options import parse_args
from backend.training.lr_check import learning_rate_warning
from backend.training.optimizers import OptimizerConfig

REQUIRED = ["--pretrained_model_name_or_path", "m.safetensors", "--output_dir", "out"]


def warning(command: str, *flags: str) -> str | None:
    args = parse_args(command, [*REQUIRED, *flags])
    return learning_rate_warning(OptimizerConfig.from_args(args), args.unet_lr, command)


@pytest.mark.parametrize("command", ["train_network", "sdxl_train_network"])
def test_a_lora_at_a_fine_tuning_rate_is_warned_about(command: str) -> None:
    message = warning(command)  # sd-scripts' default 2e-6
    assert message is not None and "--learning_rate 2e-06" in message and "1e-4" in message
    assert warning(command, "--learning_rate", "1e-4") is None
    # unet_lr is the U-Net's rate when given: it decides, whatever learning_rate says.
    assert "--unet_lr 1e-06" in (warning(command, "--learning_rate", "1e-4", "--unet_lr", "1e-6") or "")
    assert warning(command, "--unet_lr", "1e-4") is None
    assert warning(command, "--learning_rate", "0") is None  # nothing trained at 0 is a choice, not a slip


def test_a_leco_lora_is_a_lora_and_textual_inversion_is_neither() -> None:
    assert "--learning_rate 2e-06" in (warning("train_leco", "--prompts_file", "p.toml") or "")
    assert warning("sdxl_train_leco", "--prompts_file", "p.toml", "--learning_rate", "1e-3") is None
    # A1111's embedding rate 5e-3 and sd-scripts' 1e-5 both train vectors: no fine-tune warning for either.
    for rate in ("5e-3", "1e-5"):
        assert warning("train_textual_inversion", "--token_string", "tok", "--learning_rate", rate) is None


@pytest.mark.parametrize("command", ["fine_tune", "sdxl_train"])
def test_a_fine_tune_at_a_lora_rate_is_warned_about(command: str) -> None:
    message = warning(command, "--learning_rate", "1e-4")
    assert message is not None and "--learning_rate 0.0001" in message and "1e-6 to 1e-5" in message
    assert warning(command) is None
    assert warning(command, "--learning_rate", "1e-5") is None


def test_optimizers_that_set_their_own_step_are_left_alone() -> None:
    assert warning("train_network", "--optimizer_type", "Prodigy", "--learning_rate", "1.0") is None
    assert warning("fine_tune", "--optimizer_type", "DAdaptAdam", "--learning_rate", "1.0") is None
    relative = ["--optimizer_type", "Adafactor", "--optimizer_args", "relative_step=True"]
    assert warning("fine_tune", *relative, "--learning_rate", "1e-3") is None
    assert warning("fine_tune", "--optimizer_type", "Adafactor", "--learning_rate", "1e-3") is not None
