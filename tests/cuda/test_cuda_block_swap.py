"""--blocks_to_swap on a GPU: a small FLUX.1 transformer with a LoRA trains with a lower peak of GPU memory
when blocks are swapped (their weights wait in pinned RAM, copied on a side stream), with the gradients of
the unswapped model; and a flux_train_network or sd3_train_network run with swapped blocks trains the LoRA the
unswapped run trains."""

from __future__ import annotations

import copy
from pathlib import Path
from unittest import mock

import pytest
import torch
from diffusers import FluxTransformer2DModel
from safetensors.torch import load_file
from transformers import CLIPTextModel

from backend.families.flux.family import FAMILY as FLUX
from backend.networks import lora
from backend.training.block_swap import move_except, swap_plan
from backend.training.block_swap_options import SWAP_ON_CPU_ENV
from devtools.make_tiny_model import make_tiny_model
from devtools.tiny_model_configs import TINY_FLUX, TINY_SD3
from tests.end_to_end.helpers import base_flags, run_trainer
from tests.networks.helpers import clip_config

pytestmark = pytest.mark.cuda_only  # pinned memory, side streams and GPU memory peaks


def small_flux() -> FluxTransformer2DModel:
    """Wide enough that the weights, not the activations, fill the GPU (about 0.8 GB in bf16)."""
    torch.manual_seed(0)
    return FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=4, num_single_layers=8, attention_head_dim=128,
        num_attention_heads=8, joint_attention_dim=64, pooled_projection_dim=32, guidance_embeds=True,
        axes_dims_rope=(16, 56, 56),
    ).to(torch.bfloat16)


def inputs(device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    tokens, text = 16, 8
    img_ids = torch.stack([torch.zeros(tokens), torch.arange(tokens) // 4, torch.arange(tokens) % 4], dim=-1)
    values = {
        "hidden_states": torch.randn(1, tokens, 16, generator=g),
        "encoder_hidden_states": torch.randn(1, text, 64, generator=g),
        "pooled_projections": torch.randn(1, 32, generator=g),
        "timestep": torch.tensor([0.5]),
        "guidance": torch.tensor([3.5]),
        "img_ids": img_ids,
        "txt_ids": torch.zeros(text, 3),
    }
    return {k: v.to(device, torch.bfloat16 if v.is_floating_point() and k not in ("img_ids", "txt_ids") else v.dtype)
            for k, v in values.items()}


def network_on(model: FluxTransformer2DModel, device: torch.device):
    torch.manual_seed(0)
    network = lora.create_network(1.0, 4, 2.0, None, [CLIPTextModel(clip_config())], model, train_t5xxl="False")
    network.apply_to(None, model, False, True)
    with torch.no_grad():
        for param in network.parameters():
            param.normal_(0, 0.02)
    model.requires_grad_(False)
    network.to(device)
    return network


def peak_and_grads(model, network, device: torch.device) -> tuple[int, list[torch.Tensor]]:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with torch.autocast("cuda", torch.bfloat16):
        out = model(**inputs(device)).sample
    (out.float() ** 2).mean().backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated(), [p.grad.float().cpu() for p in network.parameters()]


def test_swapping_lowers_the_peak_and_keeps_the_gradients(device: torch.device) -> None:
    plain = small_flux()
    swapped = copy.deepcopy(plain)

    plain.to(device)
    plain_network = network_on(plain, device)
    plain_peak, expected = peak_and_grads(plain, plain_network, device)
    del plain, plain_network
    torch.cuda.empty_cache()

    plan = swap_plan(FLUX, swapped, 4)  # 2 of 4 double blocks, 4 of 8 single blocks
    move_except(swapped, plan.blocks, device, None)
    network = network_on(swapped, device)
    swapper = plan.swapper(device).install()
    swapped_bytes = swapper.host_bytes
    largest = max(sum(p.numel() * p.element_size() for p in block.parameters()) for block in plan.blocks)
    peak, grads = peak_and_grads(swapped, network, device)

    # At most two swapped blocks are on the GPU at a time (the one running and the next one).
    assert peak < plain_peak - (swapped_bytes - 2 * largest) + 16 * 2**20, (peak, plain_peak, swapped_bytes)
    assert plain_peak - peak > largest, "the saving is more than one block"
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=2e-2, atol=1e-4)
    last = plan.blocks[-1]
    assert all(p.device.type == "cpu" and p.is_pinned() for p in last.parameters()), "back in pinned RAM"
    assert all(p.device.type == "cuda" for p in network.parameters()), "the LoRA never leaves the GPU"
    assert swapper.loaded_blocks == []


# Per family: the command, the tiny arch, its deeper block counts, N and the log line it gives.
RUN_CASES = {
    "flux": ("flux_train_network", "flux-schnell", TINY_FLUX, {"num_layers": 4, "num_single_layers": 6}, 4,
             "block swap: 6 of 10 transformer blocks (2 + 4) wait in RAM"),
    "sd3": ("sd3_train_network", "sd3-medium", TINY_SD3, {"num_layers": 4}, 2,
            "block swap: 2 of 4 transformer blocks (2) wait in RAM"),
}


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_a_swapped_lora_run_trains_the_same_lora(case: str, device: torch.device, train_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    command, arch, configs, sizes, blocks_to_swap, log_line = RUN_CASES[case]
    monkeypatch.delenv(SWAP_ON_CPU_ENV, raising=False)
    with mock.patch.dict(configs, sizes):
        model = make_tiny_model(arch, tmp_path / "model", seed=1)

    def train(out: str, *extra: str):
        flags = base_flags(
            model.path, train_dir, tmp_path / out, "--network_module", "networks.lora", "--network_dim", "4",
            "--network_train_unet_only", "--max_train_steps", "3", "--learning_rate", "1e-1", "--optimizer_type",
            "SGDNesterov", "--save_model_as", "safetensors", "--t5xxl_max_token_length", "16", "--cache_latents",
            "--mixed_precision", "bf16", "--gradient_checkpointing", *extra,
        )
        result = run_trainer(command, *flags)
        assert result.returncode == 0, result.stderr[-3000:]
        return result, load_file(tmp_path / out / "tiny.safetensors")

    # SGD: an update is proportional to its gradient (Adam would turn rounding noise of a near-zero gradient
    # into a full step). Both runs checkpoint, so they differ only by the swap.
    _, expected = train("plain")
    swapped, got = train("swapped", "--blocks_to_swap", str(blocks_to_swap))
    assert log_line in swapped.stderr
    for key, value in expected.items():
        torch.testing.assert_close(got[key].float(), value.float(), rtol=2e-2, atol=1e-4)


def fused_sgd_steps(model: FluxTransformer2DModel, device: torch.device, steps: int = 2) -> tuple[int, torch.optim.SGD]:
    """`steps` fused SGD steps (--fused_backward_pass) of the whole transformer; the peak GPU memory."""
    from backend.training.fused_backward import FusedBackwardStep

    model.requires_grad_(True)
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    fused = FusedBackwardStep(optimizer, params, max_grad_norm=0.0, world_size=1)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(steps):
        with torch.autocast("cuda", torch.bfloat16):
            out = model(**inputs(device)).sample
        (out.float() ** 2).mean().backward()
    torch.cuda.synchronize()
    fused.remove()
    return torch.cuda.max_memory_allocated(), optimizer


def test_a_fused_fine_tune_with_swapped_blocks_lowers_the_peak_and_trains_the_same_weights(device: torch.device
                                                                                            ) -> None:
    plain = small_flux().float()
    swapped = copy.deepcopy(plain)
    plain.to(device)
    plain_peak, _ = fused_sgd_steps(plain, device)
    expected = {k: v.cpu() for k, v in plain.state_dict().items()}
    del plain
    torch.cuda.empty_cache()

    plan = swap_plan(FLUX, swapped, 4)
    move_except(swapped, plan.blocks, device, None)
    swapped.requires_grad_(True)  # before the install: trained tensors are written back after their steps
    swapper = plan.swapper(device, trained=True).install()
    peak, optimizer = fused_sgd_steps(swapped, device)

    assert peak < plain_peak, (peak, plain_peak)
    last = plan.blocks[-1]
    assert all(p.device.type == "cpu" and p.is_pinned() for p in last.parameters()), "the masters in pinned RAM"
    assert all(v.device.type == "cuda" for p in last.parameters() for v in optimizer.state[p].values()
               if isinstance(v, torch.Tensor)), "the optimizer state stays on the GPU"
    assert swapper.loaded_blocks == []
    for key, value in swapped.state_dict().items():
        torch.testing.assert_close(value.cpu(), expected[key], rtol=2e-2, atol=1e-4, msg=key)
