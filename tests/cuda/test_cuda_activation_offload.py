"""--cpu_offload_checkpointing on a GPU: with checkpointing, the blocks' inputs wait in host RAM, so a
FLUX.1 transformer with a LoRA trains with a lower peak of GPU memory and the same gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from backend.training.activation_offload import offloading_checkpoint
from tests.cuda.test_cuda_block_swap import network_on, small_flux

pytestmark = pytest.mark.cuda_only  # host copies and GPU memory peaks


def peak_and_grads(model, network, device: torch.device, tokens: int) -> tuple[int, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    img_ids = torch.stack([torch.zeros(tokens), torch.arange(tokens) // 32, torch.arange(tokens) % 32], dim=-1)
    values = {"hidden_states": torch.randn(1, tokens, 16, generator=g), "encoder_hidden_states": torch.randn(1, 8, 64, generator=g),
              "pooled_projections": torch.randn(1, 32, generator=g), "timestep": torch.tensor([0.5]),
              "guidance": torch.tensor([3.5])}
    values = {k: v.to(device, torch.bfloat16) for k, v in values.items()}
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with torch.autocast("cuda", torch.bfloat16):
        out = model(**values, img_ids=img_ids.to(device), txt_ids=torch.zeros(8, 3, device=device)).sample
    (out.float() ** 2).mean().backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated(), [p.grad.float().cpu() for p in network.parameters()]


def test_offloading_lowers_the_peak_and_keeps_the_gradients(device: torch.device) -> None:
    tokens = 4096  # a 1024 px image's latent tokens: the activations, not the weights, fill the GPU
    plain = small_flux().to(device)
    offloaded = copy.deepcopy(plain)
    plain.enable_gradient_checkpointing()
    plain.train()
    plain_network = network_on(plain, device)
    plain_peak, expected = peak_and_grads(plain, plain_network, device, tokens)
    del plain, plain_network
    torch.cuda.empty_cache()

    offloaded.enable_gradient_checkpointing(offloading_checkpoint(device))
    offloaded.train()
    network = network_on(offloaded, device)
    peak, grads = peak_and_grads(offloaded, network, device, tokens)
    block_input = tokens * 8 * 128 * 2  # one block's hidden states in bf16
    assert plain_peak - peak > 4 * block_input, (plain_peak, peak)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=2e-2, atol=1e-4)
