"""Why a run stopped, said for the user: the errors a training command reports without a traceback.

These are not bugs but states of the run or of the machine (the loss diverged, the output folder
cannot be written, a state folder belongs to another run). `command.run_command` prints the
message and hint, sends them as a progress `error` line, ends with `end` (reason `error`, and the
model that was saved anyway, if any) and exits 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backend.messages import msg
from backend.training.option_slice import OptionSlice


class RunStopped(Exception):
    """The run cannot go on; `message` says what happened, `hint` what to do, `output` a model saved anyway,
    `step` the steps done."""

    def __init__(self, message: str, hint: str | None = None, output: str | None = None,
                 step: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.output = output
        self.step = step


class TrainingDiverged(RunStopped):
    """The loss or the trained weights are no longer finite numbers."""


class ResumeMismatch(RunStopped):
    """--resume names a state saved by a run with another network or training method."""


class OutputNotWritable(RunStopped):
    """The output folder cannot take the files (permissions, a file in the way, no space)."""


@dataclass(frozen=True)
class DivergenceConfig(OptionSlice):
    """The settings a diverged run's causes name: its learning rates, clipping and precision."""

    learning_rate: float
    max_grad_norm: float
    mixed_precision: str
    unet_lr: float | None = None
    text_encoder_lr: float | list[float] | None = None
    learning_rate_te: float | None = None  # fine_tune
    learning_rate_te1: float | None = None  # sdxl_train
    learning_rate_te2: float | None = None
    full_fp16: bool = False


def divergence_causes(config: DivergenceConfig, optimizer: str) -> str:
    """The likely causes of a NaN/infinite loss for this run's settings, most likely first."""
    rates = [f"--learning_rate {config.learning_rate:g}"]
    for name in ("unet_lr", "text_encoder_lr", "learning_rate_te", "learning_rate_te1", "learning_rate_te2"):
        value = getattr(config, name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            rates.append(f"--{name} {value:g}")
    adaptive = any(name in optimizer.lower() for name in ("prodigy", "dadapt"))
    rate_list = ", ".join(rates)
    causes = [
        msg("run.diverged.rate_adaptive", "the learning rate is too high for {optimizer} ({rates}): it adapts the "
            "step size itself and expects about 1.0", optimizer=optimizer, rates=rate_list) if adaptive else
        msg("run.diverged.rate", "the learning rate is too high for {optimizer} ({rates}): try a tenth of it",
            optimizer=optimizer, rates=rate_list),
    ]
    if not config.max_grad_norm:
        causes.append(msg("run.diverged.no_clipping", "gradient clipping is off: turn it back on (--max_grad_norm 1.0)"))
    if config.full_fp16:
        causes.append(msg(
            "run.diverged.full_fp16", "fp16 overflow: use --mixed_precision bf16 if the GPU supports it; with fp16 keep "
            "the VAE in float32 (--no_half_vae; the SDXL VAE overflows in fp16) and drop --full_fp16"))
    elif config.mixed_precision == "fp16":
        causes.append(msg(
            "run.diverged.fp16", "fp16 overflow: use --mixed_precision bf16 if the GPU supports it; with fp16 keep "
            "the VAE in float32 (--no_half_vae; the SDXL VAE overflows in fp16)"))
    causes.append(msg(
        "run.diverged.data", "broken training data: an image or a cached latent/text-encoder file with NaN values "
        "(delete the .npz cache files beside the images and run again)"))
    numbered = "; ".join(f"({i}) {cause}" for i, cause in enumerate(causes, start=1))
    return msg("run.diverged.causes", "Likely causes: {causes}.", causes=numbered)


def loss_name(value: float) -> str:
    return "NaN" if math.isnan(value) else msg("run.diverged.infinite", "infinite")
