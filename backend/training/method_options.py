"""The training methods' slices of the options: a network's (LoRA commands) and a fine-tune's.

Apart from the methods themselves (network_method.py, finetune_method.py, which load diffusers),
because preflight and the resume record read them before anything heavy is imported.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from backend.options.schema import FINETUNE_COMMANDS
from backend.training.option_slice import OptionSlice


@dataclass(frozen=True)
class NetworkConfig(OptionSlice):
    """A network run: the network, the weights it starts from, what it trains and at which rates."""

    network_module: str
    network_dim: int | None
    network_alpha: float
    network_dropout: float | None
    network_args: list[str] | None
    network_weights: str | None
    dim_from_weights: bool
    network_train_unet_only: bool
    network_train_text_encoder_only: bool
    learning_rate: float
    unet_lr: float | None
    text_encoder_lr: float | list[float] | None
    scale_weight_norms: float | None
    gradient_checkpointing: bool


@dataclass(frozen=True)
class FineTuneConfig(OptionSlice):
    """A fine-tune: the parts trained and their rates, the U-Net's block rates, the saved format, the EMA."""

    learning_rate: float
    train_text_encoder: bool
    learning_rate_te: float | None  # fine_tune's one text encoder
    learning_rate_te1: float | None  # sdxl_train's two
    learning_rate_te2: float | None
    block_lr: str | None
    save_model_as: str
    use_safetensors: bool
    ema: bool
    ema_decay: float
    ema_save: str
    diffusers_xformers: bool
    stop_text_encoder_training: int | None = None  # train_db's: the step from which the text encoder is frozen


def method_config(args: argparse.Namespace, command: str) -> NetworkConfig | FineTuneConfig:
    """The slice of `command`'s training method."""
    return FineTuneConfig.from_args(args) if command in FINETUNE_COMMANDS else NetworkConfig.from_args(args)
