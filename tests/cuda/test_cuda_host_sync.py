"""Our per-step code queues its GPU work without waiting for it: the U-Net's prediction (SDXL's size
conditioning included) with the LoRA hooked in, the noising, the SNR-weighted loss and the backward
pass run under torch's sync debug mode set to "error", so a host sync anywhere in them (a blocking
host-to-GPU copy, `.item()`, a tensor used as a Python bool) fails with the operation named. A sync
would make every training step wait for the GPU; see docs on the lagged loss read (step_reports.py).
The text encoders run before the checked part: their code is transformers', not ours."""

from __future__ import annotations

import pytest
import torch

from backend.families.loaded import get_spec
from backend.families.sdxl.spec import make_time_ids
from backend.objectives.loss import LossConfig, compute_loss
from backend.objectives.noise import create_noise_scheduler
from backend.options import parse_command_line
from backend.training.method_options import NetworkConfig
from backend.training.network_method import NetworkTraining
from tests.end_to_end.helpers import base_flags

pytestmark = pytest.mark.cuda_only

FAMILIES = {"sd15": ("sd1", "train_network"), "sdxl": ("sdxl", "sdxl_train_network")}


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_a_step_of_our_model_code_queues_without_a_host_sync(tiny, train_dir, tmp_path, device, arch) -> None:
    family, command = FAMILIES[arch]
    model = tiny.get(arch).path
    args = parse_command_line(command, base_flags(model, train_dir, tmp_path, "--network_dim", "4"))
    spec = get_spec(family)
    components = spec.load(model, dtype=torch.bfloat16)
    network = NetworkTraining(NetworkConfig.from_args(args), components, args).network
    for module in (components.unet, *components.text_encoders, network):
        module.to(device)
    with torch.no_grad():
        embeds = spec.encode_prompts(components.text_encoders, spec.tokenize(components.tokenizers, ["sks dog", "a cat"]))
    generator = torch.Generator(device=device).manual_seed(0)
    latents = torch.randn(2, 4, 8, 8, device=device, generator=generator)
    noise = torch.randn(2, 4, 8, 8, device=device, generator=generator)
    timesteps = torch.randint(0, 1000, (2,), device=device, generator=generator)
    scheduler = create_noise_scheduler(False)
    scheduler.add_noise(latents, noise, timesteps)  # its first call moves the scheduler's table to the GPU, once
    torch.cuda.synchronize()

    torch.cuda.set_sync_debug_mode("error")
    try:
        noisy = scheduler.add_noise(latents, noise, timesteps)
        time_ids = make_time_ids([(64, 64)] * 2, [(0, 0)] * 2, [(64, 64)] * 2) if family == "sdxl" else None
        with torch.autocast(device.type, dtype=torch.bfloat16):
            prediction = spec.predict(components.unet, noisy, timesteps, embeds, time_ids)
        loss = compute_loss(prediction, noise, timesteps, scheduler, LossConfig(min_snr_gamma=5.0))
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss).item()
    assert any(p.grad is not None for p in network.parameters())
