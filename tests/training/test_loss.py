from __future__ import annotations

import math

import pytest
import torch

from backend.objectives.loss import (
    LossConfig,
    apply_loss_mask,
    apply_timestep_weighting,
    compute_loss,
    conditional_loss,
    debiased_weight,
    huber_threshold,
    mask_from_conditioning_image,
    min_snr_weight,
    per_sample_loss,
    snr_at,
    v_pred_scale,
)
from backend.objectives.noise import create_noise_scheduler


def _snr_by_hand(t: int) -> float:
    betas = [(0.00085**0.5 + (0.012**0.5 - 0.00085**0.5) * i / 999) ** 2 for i in range(1000)]
    alpha_bar = math.prod(1 - b for b in betas[: t + 1])
    return alpha_bar / (1 - alpha_bar)


def test_snr_lookup_matches_hand_computation(noise_scheduler) -> None:
    t = torch.tensor([0, 500, 999])
    expected = torch.tensor([_snr_by_hand(0), _snr_by_hand(500), _snr_by_hand(999)])
    assert torch.allclose(snr_at(t, noise_scheduler), expected, rtol=1e-4)


def test_snr_weight_formulas() -> None:
    snr = torch.tensor([10.0, 2.0])
    assert torch.allclose(min_snr_weight(snr, 5.0, v_prediction=False), torch.tensor([0.5, 1.0]))
    assert torch.allclose(min_snr_weight(snr, 5.0, v_prediction=True), torch.tensor([5 / 11, 2 / 3]))
    assert torch.allclose(v_pred_scale(torch.tensor([1.0, 5000.0])), torch.tensor([0.5, 1000 / 1001]))
    snr = torch.tensor([4.0, 2000.0])
    assert torch.allclose(debiased_weight(snr, v_prediction=False), torch.tensor([0.5, 1 / math.sqrt(1000)]))
    assert torch.allclose(debiased_weight(snr, v_prediction=True), torch.tensor([1 / 5, 1 / 1001]))


def test_timestep_weighting_uses_the_scheduler_snr(noise_scheduler) -> None:
    t = torch.tensor([100, 800])
    snr = torch.tensor([_snr_by_hand(100), _snr_by_hand(800)])
    loss = torch.tensor([1.0, 2.0])
    out = apply_timestep_weighting(loss, t, noise_scheduler, LossConfig(min_snr_gamma=5.0))
    assert torch.allclose(out, loss * torch.clamp(snr, max=5.0) / snr, rtol=1e-4)
    out = apply_timestep_weighting(loss, t, noise_scheduler, LossConfig(v_pred_like_loss=0.5))
    assert torch.allclose(out, loss + loss * (snr + 1) / snr * 0.5, rtol=1e-4)
    v = LossConfig(scale_v_pred_loss_like_noise_pred=True, v_parameterization=True)
    assert torch.allclose(
        apply_timestep_weighting(loss, t, noise_scheduler, v), loss * snr / (snr + 1), rtol=1e-4
    )
    assert apply_timestep_weighting(loss, t, noise_scheduler, LossConfig()) is loss


def test_huber_and_smooth_l1_formulas() -> None:
    pred = torch.tensor([[0.0, 1.0, 3.0]])
    target = torch.zeros(1, 3)
    c = torch.tensor([0.1])
    expected_huber = [2 * 0.1 * (math.sqrt(d * d + 0.01) - 0.1) for d in (0.0, 1.0, 3.0)]
    expected_smooth = [2 * (math.sqrt(d * d + 0.01) - 0.1) for d in (0.0, 1.0, 3.0)]
    assert torch.allclose(conditional_loss(pred, target, "huber", c), torch.tensor([expected_huber]))
    assert torch.allclose(conditional_loss(pred, target, "smooth_l1", c), torch.tensor([expected_smooth]))
    assert torch.allclose(conditional_loss(pred, target, "l2"), torch.tensor([[0.0, 1.0, 9.0]]))
    assert torch.allclose(conditional_loss(pred, target, "l1"), torch.tensor([[0.0, 1.0, 3.0]]))
    with pytest.raises(ValueError, match="huber_c"):
        conditional_loss(pred, target, "huber")


def test_huber_schedules(noise_scheduler) -> None:
    t = torch.tensor([0, 500, 1000])
    const = huber_threshold(
        LossConfig(loss_type="huber", huber_schedule="constant", huber_c=0.2, huber_scale=2.0),
        t,
        noise_scheduler,
    )
    assert torch.allclose(const, torch.full((3,), 0.4))
    exp = huber_threshold(
        LossConfig(loss_type="huber", huber_schedule="exponential", huber_c=0.1, huber_scale=2.0),
        t,
        noise_scheduler,
    )
    assert torch.allclose(exp, torch.tensor([2.0, 2.0 * math.sqrt(0.1), 0.2]))
    t = torch.tensor([0, 999])
    snr = huber_threshold(LossConfig(loss_type="smooth_l1", huber_c=0.1), t, noise_scheduler)
    a = noise_scheduler.alphas_cumprod[t].double()
    sigma = ((1 - a) / a).sqrt()
    assert torch.allclose(snr.double(), (1 - 0.1) / (1 + sigma) ** 2 + 0.1, rtol=1e-5)
    assert huber_threshold(LossConfig(), t, noise_scheduler) is None


def test_huber_snr_schedule_with_zero_terminal_snr_is_finite() -> None:
    scheduler = create_noise_scheduler(zero_terminal_snr=True)
    c = huber_threshold(LossConfig(loss_type="huber"), torch.tensor([999]), scheduler)
    assert c.item() == pytest.approx(0.1)


def test_masks() -> None:
    loss = torch.ones(2, 4, 4, 4)
    mask = torch.zeros(2, 8, 8)
    mask[:, :, :4] = 1.0  # left half of the image
    masked = apply_loss_mask(loss, mask)
    assert masked[:, :, :, :2].eq(1).all() and masked[:, :, :, 2:].eq(0).all()
    image = torch.full((1, 3, 8, 8), -1.0)
    image[:, 0, :4] = 1.0
    assert torch.equal(mask_from_conditioning_image(image)[0, 0, :4], torch.ones(4, 8))
    assert torch.equal(mask_from_conditioning_image(image)[0, 0, 4:], torch.zeros(4, 8))


def test_compute_loss_pipeline(noise_scheduler) -> None:
    pred = torch.full((2, 4, 8, 8), 2.0, dtype=torch.float16)
    target = torch.zeros(2, 4, 8, 8)
    t = torch.tensor([10, 20])
    config = LossConfig()
    assert compute_loss(pred, target, t, noise_scheduler, config).item() == pytest.approx(4.0)
    weighted = per_sample_loss(
        pred, target, t, noise_scheduler, config, loss_weights=torch.tensor([1.0, 0.5])
    )
    assert torch.allclose(weighted, torch.tensor([4.0, 2.0]))
    half_mask = torch.zeros(2, 8, 8)
    half_mask[:, :4] = 1
    # masked-out areas dilute the mean (sd-scripts), they are not renormalised away
    assert compute_loss(pred, target, t, noise_scheduler, config, mask=half_mask).item() == pytest.approx(2.0)
    snr_config = LossConfig(min_snr_gamma=5.0)
    snr = snr_at(t, noise_scheduler)
    expected = (4.0 * torch.clamp(snr, max=5.0) / snr).mean()
    assert compute_loss(pred, target, t, noise_scheduler, snr_config).item() == pytest.approx(
        expected.item(), rel=1e-5
    )


def test_loss_config_validation() -> None:
    LossConfig(loss_type="huber").validate()
    with pytest.raises(ValueError, match="loss_type"):
        LossConfig(loss_type="l3").validate()
    with pytest.raises(ValueError, match="huber_schedule"):
        LossConfig(huber_schedule="linear").validate()
    with pytest.raises(ValueError, match="needs v_parameterization"):
        LossConfig(scale_v_pred_loss_like_noise_pred=True).validate()
    with pytest.raises(ValueError, match="cannot be used with v_parameterization"):
        LossConfig(v_pred_like_loss=0.1, v_parameterization=True).validate()
    with pytest.raises(ValueError, match="huber_c"):
        LossConfig(loss_type="huber", huber_c=0.0).validate()
