"""The calls the training loop makes on a training method, the one seam between them.

Three methods implement it: `network_method.NetworkTraining` (LoRA and other networks hooked into
a frozen model), `finetune_method.FineTuneTraining` (the model's own weights trained) and
`embedding_method.EmbeddingTraining` (Textual Inversion: new token vectors). The loop never asks which one it has.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import torch

from backend.finite_weights import WeightProblems

if TYPE_CHECKING:
    from backend.training.ema import EmaWeights

T = TypeVar("T")


class TrainingMethod(Protocol):
    lora: bool  # saved files are networks (modelspec architecture ".../lora")
    network_args: dict[str, Any]  # recorded as ss_network_args (empty for fine-tuning)
    train_text_encoder: bool  # text encoding needs gradients
    ema: EmaWeights | None  # averaged weights a training state carries too (fine-tuning with --ema)

    @property
    def trained_module(self) -> torch.nn.Module:
        """What is trained, as one module: its mode is switched for validation, its copies compared."""

    def param_groups(self) -> tuple[list[dict[str, Any]], list[str]]: ...
    def trainable_parameters(self) -> list[torch.nn.Parameter]: ...
    def forward(self, call: Callable[[], T]) -> T:
        """Run `call` (text encoding and the U-Net's prediction) as the method's forward pass."""
    def on_epoch_start(self) -> None: ...
    def on_step_start(self, step: int) -> None: ...
    def after_optimizer_step(self, device: torch.device) -> dict[str, float]: ...
    def state_objects(self) -> list[Any]: ...
    def sampling_modules(self) -> tuple[torch.nn.Module, ...]: ...
    def prompt_text(self, text: str) -> str:
        """A caption or sample prompt as the text encoders must read it (Textual Inversion's word -> its tokens)."""
    def file_metadata(self, metadata: dict[str, str]) -> dict[str, str]: ...
    def before_save(self, accelerator: Any) -> None:
        """Called on every process before the main one saves (collectives allowed)."""
    def written_paths(self, path: Path) -> list[Path]: ...
    def weight_problems(self, dtype: torch.dtype | None) -> WeightProblems:
        """Non-finite values in the trained weights a save would write (cast to `dtype`); checked before every save."""
    def saved_bytes(self, dtype: torch.dtype | None) -> int:
        """The size of one model save (for the free-space checks)."""
    def save(self, path: Path, dtype: torch.dtype | None, metadata: dict[str, str] | None) -> Path: ...
