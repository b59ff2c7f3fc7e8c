"""--cpu_offload_checkpointing: each checkpointed block's inputs go to the host and come back for the
recompute; the loss and gradients are those of plain checkpointing (preflight: test_preflight_inputs.py)."""

from __future__ import annotations

import copy

import torch

from backend.training import activation_offload
from backend.training.activation_offload import offloading_checkpoint
from tests.networks.test_flux_lora import flux_transformer, transformer_inputs


def loss_and_grads(transformer: torch.nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    transformer.train()
    out = transformer(**transformer_inputs(), return_dict=False)[0]
    loss = out.square().mean()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in transformer.parameters() if p.grad is not None]


def test_offloaded_inputs_come_back_for_the_recompute_with_the_same_gradients(monkeypatch) -> None:
    torch.manual_seed(0)
    plain = flux_transformer()
    offloaded = copy.deepcopy(plain)
    plain.enable_gradient_checkpointing()
    moves: list[str] = []
    real_to = activation_offload._to

    def recording_to(value, device):
        if isinstance(value, torch.Tensor):
            moves.append(str(device))
        return real_to(value, device)

    monkeypatch.setattr(activation_offload, "_to", recording_to)
    # On this CPU machine the "device" is the CPU too: the path is the one CUDA runs.
    offloaded.enable_gradient_checkpointing(offloading_checkpoint(torch.device("cpu"), host=torch.device("cpu")))
    expected_loss, expected_grads = loss_and_grads(plain)
    loss, grads = loss_and_grads(offloaded)
    assert torch.equal(loss, expected_loss)
    assert len(grads) == len(expected_grads) and all(torch.equal(a, b) for a, b in zip(grads, expected_grads, strict=True))
    blocks = len(offloaded.transformer_blocks) + len(offloaded.single_transformer_blocks)
    assert len(moves) > 0 and moves.count("cpu") == len(moves)
    # each block: its inputs out to the host, back for the forward, back again for the backward's recompute
    per_block = len(moves) // blocks
    assert len(moves) == per_block * blocks and per_block % 3 == 0
