"""The training methods' slices of the options: a network's (LoRA commands), a fine-tune's and Textual Inversion's.

Apart from the methods themselves (network_method.py, finetune_method.py, which load diffusers),
because preflight and the resume record read them before anything heavy is imported.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from backend.options.schema import FINETUNE_COMMANDS, LECO_COMMANDS, TEXTUAL_INVERSION_COMMANDS
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


@dataclass(frozen=True)
class EmbeddingConfig(OptionSlice):
    """Textual Inversion: the new word, its vectors and where they start from; how the files are saved."""

    token_string: str
    init_word: str | None
    num_vectors_per_token: int
    weights: str | None
    use_object_template: bool
    use_style_template: bool
    learning_rate: float
    save_model_as: str
    gradient_checkpointing: bool

    @property
    def token_strings(self) -> list[str]:
        """The words added to the tokenizers: 'tok', 'tok1', ... 'tok<N-1>' (sd-scripts' names)."""
        return [self.token_string] + [f"{self.token_string}{i}" for i in range(1, self.num_vectors_per_token)]


MethodConfig = NetworkConfig | FineTuneConfig | EmbeddingConfig


def method_config(args: argparse.Namespace, command: str) -> MethodConfig:
    """The slice of `command`'s training method."""
    if command in FINETUNE_COMMANDS:
        return FineTuneConfig.from_args(args)
    if command in TEXTUAL_INVERSION_COMMANDS:
        return EmbeddingConfig.from_args(args)
    network = NetworkConfig.from_args(args)
    if command in LECO_COMMANDS:  # LECO trains the U-Net alone, whatever --network_train_unet_only says
        return dataclasses.replace(network, network_train_unet_only=True)
    return network
