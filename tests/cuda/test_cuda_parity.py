"""The GPU computes what the CPU computes, where it should: one float32 LoRA training step (text
encoder and U-Net forward, loss, backward, optimizer step through the trainer's own network and
optimizer factory) on the same inputs, the fused AdamW kernels given the same gradients, and the
SNR-weighted losses. TF32 is off for these comparisons (cuDNN allows it by default for convolutions;
the trainer does not change that), so float32 means float32 on both sides."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from backend.families.loaded import get_spec
from backend.families.sdxl.spec import make_time_ids
from backend.objectives.loss import LossConfig, compute_loss
from backend.objectives.noise import create_noise_scheduler
from backend.options import parse_command_line
from backend.training.method_options import NetworkConfig
from backend.training.network_method import NetworkTraining
from backend.training.optimizers import create_optimizer
from tests.cuda.support import tf32_off
from tests.end_to_end.helpers import base_flags

pytestmark = pytest.mark.cuda_only

FAMILIES = {"sd15": ("sd1", "train_network"), "sdxl": ("sdxl", "sdxl_train_network")}


@pytest.fixture(autouse=True)
def no_tf32() -> Iterator[None]:
    with tf32_off():
        yield


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).norm() / expected.norm())


def lora_step(tiny, train_dir, tmp_path, arch: str, device: torch.device) -> tuple[float, dict, dict]:
    """(loss, LoRA gradients, LoRA weight changes) of one SGD step, computed on `device`."""
    family, command = FAMILIES[arch]
    model = tiny.get(arch).path
    args = parse_command_line(command, base_flags(model, train_dir, tmp_path, "--network_dim", "4",
                                                  "--network_alpha", "4", "--learning_rate", "1e-2"))
    spec = get_spec(family)
    components = spec.load(model)  # float32
    torch.manual_seed(0)
    method = NetworkTraining(NetworkConfig.from_args(args), components, args)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # up weights start at zero; non-zero ones give every LoRA weight a gradient
        for name, param in method.network.named_parameters():
            if "lora_up" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    for module in (components.unet, *components.text_encoders, method.network):
        module.to(device)
    before = {name: p.detach().cpu().clone() for name, p in method.network.named_parameters()}

    latents = torch.randn(2, 4, 8, 8, generator=generator)
    noise = torch.randn(2, 4, 8, 8, generator=generator)
    timesteps = torch.tensor([50, 800])
    noisy = create_noise_scheduler(False).add_noise(latents, noise, timesteps)
    time_ids = make_time_ids([(64, 64)] * 2, [(0, 0)] * 2, [(64, 64)] * 2) if family == "sdxl" else None
    token_ids = spec.tokenize(components.tokenizers, ["sks dog, picture 0", "a photo of a cat"])
    embeds = spec.encode_prompts(components.text_encoders, token_ids)
    prediction = spec.predict(components.unet, noisy.to(device), timesteps.to(device), embeds, time_ids)
    loss = F.mse_loss(prediction.float(), noise.to(device))
    loss.backward()
    # SDXL conditions on the text encoders' penultimate layer: LoRA weights of the last one get no gradient.
    grads = {name: p.grad.detach().cpu().clone() for name, p in method.network.named_parameters()
             if p.grad is not None}
    groups, _ = method.param_groups()
    create_optimizer("SGDNesterov", groups, args.learning_rate, device=device).optimizer.step()
    moved = {name: p.detach().cpu() - before[name] for name, p in method.network.named_parameters()}
    return float(loss.item()), grads, moved


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_one_float32_lora_step_matches_the_cpu(tiny, train_dir, tmp_path, device, arch) -> None:
    cpu_loss, cpu_grads, cpu_moved = lora_step(tiny, train_dir, tmp_path, arch, torch.device("cpu"))
    gpu_loss, gpu_grads, gpu_moved = lora_step(tiny, train_dir, tmp_path, arch, device)
    assert gpu_loss == pytest.approx(cpu_loss, rel=1e-4)
    assert cpu_grads.keys() == gpu_grads.keys() and any("te" in name for name in cpu_grads)
    assert cpu_moved.keys() == gpu_moved.keys()
    flat = {key: torch.cat([values[name].flatten() for name in sorted(values)])
            for key, values in {"cpu_g": cpu_grads, "gpu_g": gpu_grads, "cpu_m": cpu_moved, "gpu_m": gpu_moved}.items()}
    assert flat["cpu_g"].norm() > 0 and bool((flat["cpu_g"] != 0).float().mean() > 0.5)
    assert relative_error(flat["gpu_g"], flat["cpu_g"]) < 1e-3  # float32 rounding: ~1e-6; a real difference: ~1
    assert relative_error(flat["gpu_m"], flat["cpu_m"]) < 1e-3


def test_fused_adamw_steps_alike_given_the_same_gradients(device) -> None:
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(64, 96, generator=generator)
    grads = [torch.randn(64, 96, generator=generator) for _ in range(3)]
    results = []
    for target in (torch.device("cpu"), device):
        weight = torch.nn.Parameter(start.clone().to(target))
        optimizer = create_optimizer("AdamW", [weight], 1e-3, device=target).optimizer
        assert optimizer.defaults["fused"] is True  # the fused kernel of each device
        for grad in grads:
            weight.grad = grad.to(target)
            optimizer.step()
        results.append(weight.detach().cpu())
    torch.testing.assert_close(results[1], results[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("config", [
    LossConfig(min_snr_gamma=5.0),
    LossConfig(debiased_estimation_loss=True),
    LossConfig(v_parameterization=True, scale_v_pred_loss_like_noise_pred=True, min_snr_gamma=5.0),
    LossConfig(loss_type="huber", huber_schedule="snr"),
    LossConfig(loss_type="smooth_l1", huber_schedule="exponential"),
], ids=["min_snr", "debiased", "v_pred", "huber_snr", "smooth_l1_exponential"])
def test_weighted_losses_match_the_cpu(device, config) -> None:
    generator = torch.Generator().manual_seed(0)
    prediction, target = torch.randn(4, 4, 8, 8, generator=generator), torch.randn(4, 4, 8, 8, generator=generator)
    timesteps = torch.tensor([0, 10, 500, 999])
    losses = [compute_loss(prediction.to(d), target.to(d), timesteps.to(d), create_noise_scheduler(False), config)
              for d in (torch.device("cpu"), device)]
    assert losses[1].device.type == device.type
    assert float(losses[1]) == pytest.approx(float(losses[0]), rel=1e-5)
