"""Training loss: element loss (l2/l1/huber/smooth_l1), masks, per-sample weights, SNR weightings.

The order and formulas are sd-scripts' (train_network.py `process_batch` + `post_process_loss`),
so a run here reaches the same loss values as the same run there:

    element loss (float32) -> x mask -> mean per sample -> x loss weight -> SNR weightings -> mean

A mask multiplies the element loss and the mean still runs over all elements (masked-out areas
dilute the loss, they are not renormalised), as in sd-scripts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from backend.messages import msg
from backend.objectives.noise import snr_table

if TYPE_CHECKING:  # type hints only: preflight validates a LossConfig without importing diffusers
    from diffusers import DDPMScheduler

    from backend.objectives.base import Prediction

LOSS_TYPES = ("l2", "l1", "huber", "smooth_l1")
HUBER_SCHEDULES = ("snr", "exponential", "constant")
# SNR is capped here where 1/SNR-style weights would blow up at t=0 (sd-scripts' value).
SNR_CAP = 1000.0


@dataclass(frozen=True)
class LossConfig:
    loss_type: str = "l2"
    huber_schedule: str = "snr"
    huber_c: float = 0.1
    huber_scale: float = 1.0
    min_snr_gamma: float | None = None
    scale_v_pred_loss_like_noise_pred: bool = False
    v_pred_like_loss: float | None = None
    debiased_estimation_loss: bool = False
    v_parameterization: bool = False

    @classmethod
    def from_args(cls, args: Any) -> LossConfig:
        return cls(**{name: getattr(args, name) for name in cls.__dataclass_fields__})

    def validate(self) -> None:
        if self.loss_type not in LOSS_TYPES:  # the option's choices; a guard for direct callers
            raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}, not {self.loss_type!r}")
        if self.huber_schedule not in HUBER_SCHEDULES:
            raise ValueError(
                f"huber_schedule must be one of {', '.join(HUBER_SCHEDULES)}, not {self.huber_schedule!r}"
            )
        if self.loss_type in ("huber", "smooth_l1") and self.huber_c <= 0:
            raise ValueError(msg("preflight.loss.huber_c", "huber_c must be positive for loss_type {loss_type}, "
                                 "got {value}", loss_type=self.loss_type, value=self.huber_c))
        if self.scale_v_pred_loss_like_noise_pred and not self.v_parameterization:
            raise ValueError(msg("preflight.loss.scale_needs_v", "scale_v_pred_loss_like_noise_pred needs "
                                 "v_parameterization"))
        if self.v_pred_like_loss and self.v_parameterization:
            raise ValueError(msg("preflight.loss.v_pred_like_with_v", "v_pred_like_loss cannot be used with "
                                 "v_parameterization"))


def snr_at(timesteps: torch.Tensor, noise_scheduler: DDPMScheduler) -> torch.Tensor:
    """Per-sample SNR from the scheduler's `all_snr` table (see noise.create_noise_scheduler)."""
    table = getattr(noise_scheduler, "all_snr", None)
    if table is None:
        table = snr_table(noise_scheduler.alphas_cumprod)
    # non_blocking: a blocking host-to-GPU copy would wait for the whole step queued so far.
    return table.to(timesteps.device, non_blocking=True)[timesteps].float()


def huber_threshold(
    config: LossConfig, timesteps: torch.Tensor, noise_scheduler: DDPMScheduler
) -> torch.Tensor | None:
    """Per-sample huber_c for huber/smooth_l1 (None for l1/l2), following `huber_schedule`.

    - constant:    huber_c * huber_scale
    - exponential: huber_scale * exp(ln(huber_c) * t / T), from 1 at t=0 down to huber_c at t=T
    - snr:         (1 - huber_c) / (1 + sigma_t)^2 + huber_c with sigma_t = sqrt((1 - a_t) / a_t)
                   (huber_scale is not applied here, as in sd-scripts)
    """
    if config.loss_type not in ("huber", "smooth_l1"):
        return None
    t = timesteps.float()
    if config.huber_schedule == "exponential":
        alpha = -math.log(config.huber_c) / noise_scheduler.config.num_train_timesteps
        return torch.exp(-alpha * t) * config.huber_scale
    if config.huber_schedule == "snr":
        alphas_cumprod = noise_scheduler.alphas_cumprod.to(timesteps.device, non_blocking=True)[timesteps].float()
        sigmas = ((1.0 - alphas_cumprod) / alphas_cumprod) ** 0.5
        return (1 - config.huber_c) / (1 + sigmas) ** 2 + config.huber_c
    return torch.full_like(t, config.huber_c * config.huber_scale)


def conditional_loss(
    model_pred: torch.Tensor, target: torch.Tensor, loss_type: str, huber_c: torch.Tensor | None = None
) -> torch.Tensor:
    """Element-wise loss (no reduction). huber: 2c(sqrt(d^2 + c^2) - c); smooth_l1: 2(sqrt(d^2 + c^2) - c)."""
    if loss_type == "l2":
        return F.mse_loss(model_pred, target, reduction="none")
    if loss_type == "l1":
        return F.l1_loss(model_pred, target, reduction="none")
    if loss_type in ("huber", "smooth_l1"):
        if huber_c is None:
            raise ValueError(f"loss_type {loss_type} needs per-sample huber_c (see huber_threshold)")
        c = huber_c.view(-1, *([1] * (model_pred.ndim - 1)))
        root = torch.sqrt((model_pred - target) ** 2 + c**2) - c
        return 2 * c * root if loss_type == "huber" else 2 * root
    raise ValueError(f"unknown loss_type {loss_type!r}")


def mask_from_conditioning_image(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) conditioning image in [-1, 1] -> (B, 1, H, W) mask in [0, 1] from its red channel."""
    return image[:, :1] / 2 + 0.5


def apply_loss_mask(loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Multiply the element loss (B, C, h, w) by a [0, 1] mask (B, H, W) or (B, 1, H, W), area-resized to (h, w)."""
    if mask.ndim == 3:
        mask = mask.unsqueeze(1)
    mask = F.interpolate(mask.to(loss.dtype), size=loss.shape[2:], mode="area")
    return loss * mask


def min_snr_weight(snr: torch.Tensor, gamma: float, v_prediction: bool) -> torch.Tensor:
    """Min-SNR-gamma (https://arxiv.org/abs/2303.09556): min(SNR, g)/SNR, or min(SNR, g)/(SNR + 1) for v-pred."""
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1) if v_prediction else clipped / snr


def v_pred_scale(snr: torch.Tensor) -> torch.Tensor:
    """SNR/(SNR + 1) with SNR capped at 1000: turns a v-prediction loss into a noise-prediction-like one."""
    snr = torch.clamp(snr, max=SNR_CAP)
    return snr / (snr + 1)


def debiased_weight(snr: torch.Tensor, v_prediction: bool) -> torch.Tensor:
    """Debiased estimation (https://arxiv.org/abs/2310.08442): 1/sqrt(SNR), or 1/(SNR + 1) for v-pred; SNR capped at 1000."""
    snr = torch.clamp(snr, max=SNR_CAP)
    return 1 / (snr + 1) if v_prediction else 1 / torch.sqrt(snr)


def apply_timestep_weighting(
    loss: torch.Tensor, timesteps: torch.Tensor, noise_scheduler: DDPMScheduler, config: LossConfig
) -> torch.Tensor:
    """The SNR-based adjustments of a per-sample loss (B,), in sd-scripts' order."""
    if not (
        config.min_snr_gamma
        or config.scale_v_pred_loss_like_noise_pred
        or config.v_pred_like_loss
        or config.debiased_estimation_loss
    ):
        return loss
    snr = snr_at(timesteps, noise_scheduler).to(loss.device)
    if config.min_snr_gamma:
        loss = loss * min_snr_weight(snr, config.min_snr_gamma, config.v_parameterization)
    if config.scale_v_pred_loss_like_noise_pred:
        loss = loss * v_pred_scale(snr)
    if config.v_pred_like_loss:
        # Adds a v-prediction-like term to an eps-prediction loss: loss + loss / scale * k.
        loss = loss + loss / v_pred_scale(snr) * config.v_pred_like_loss
    if config.debiased_estimation_loss:
        loss = loss * debiased_weight(snr, config.v_parameterization)
    return loss


def weighted_sample_losses(
    model_pred: torch.Tensor,
    target: torch.Tensor,
    loss_type: str,
    huber_c: torch.Tensor | None = None,
    loss_weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Each sample's loss (B,) before any timestep weighting: element loss (float32) -> x mask ->
    mean per sample -> x loss weight (per sample, e.g. prior_loss_weight)."""
    loss = conditional_loss(model_pred.float(), target.float(), loss_type, huber_c)
    if mask is not None:
        loss = apply_loss_mask(loss, mask)
    loss = loss.mean(dim=list(range(1, loss.ndim)))
    if loss_weights is not None:
        loss = loss * loss_weights.to(loss.device, loss.dtype)
    return loss


def per_sample_loss(
    model_pred: torch.Tensor,
    target: torch.Tensor,
    timesteps: torch.Tensor,
    noise_scheduler: DDPMScheduler,
    config: LossConfig,
    loss_weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The weighted loss of each sample (B,) under DDPM, SNR weightings included."""
    huber_c = huber_threshold(config, timesteps, noise_scheduler)
    loss = weighted_sample_losses(model_pred, target, config.loss_type, huber_c, loss_weights, mask)
    return apply_timestep_weighting(loss, timesteps, noise_scheduler, config)


def compute_loss(
    model_pred: torch.Tensor,
    target: torch.Tensor,
    timesteps: torch.Tensor,
    noise_scheduler: DDPMScheduler,
    config: LossConfig,
    loss_weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The scalar training loss (mean of `per_sample_loss`)."""
    return per_sample_loss(model_pred, target, timesteps, noise_scheduler, config, loss_weights, mask).mean()


def prediction_loss(
    measured: Prediction,
    loss_type: str,
    loss_weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The scalar loss of a step's `Prediction` (any objective), in sd-scripts' order: element loss
    (float32) -> x mask -> mean per sample -> x loss weight -> x the objective's weights -> mean."""
    loss = weighted_sample_losses(measured.prediction, measured.target, loss_type, measured.huber_c,
                                  loss_weights, mask)
    if measured.weights is not None:
        loss = loss * measured.weights.to(loss.device)
    return loss.mean()
