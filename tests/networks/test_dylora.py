"""DyLoRA: random rank blocks while training, full rank in eval, standard LoRA files."""

from __future__ import annotations

import pytest
import torch

from backend.networks import dylora, lora
from backend.networks.args import NetworkArgsError

from .helpers import randomize_up, unet_inputs, unet_out


def test_dylora_trains_one_block_per_step_and_saves_standard_keys(sd1, tmp_path):
    te, unet = sd1
    te.requires_grad_(False)
    unet.requires_grad_(False)
    inputs = unet_inputs(unet)
    base = unet_out(unet, inputs)
    network = dylora.create_network(1.0, 4, 2, None, te, unet, unit="2", conv_dim="4")
    network.apply_to(te, unet, True, True)
    assert torch.equal(unet_out(unet, inputs), base)  # zero-initialized up blocks

    groups, _ = network.prepare_optimizer_params(1e-2, 1e-2, 1e-2)
    network.train()
    unet(**inputs).sample.pow(2).mean().backward()
    module = network.unet_loras[0]
    with_grad = [name for name, p in module.named_parameters() if p.grad is not None]
    # one block of `unit` ranks (down and up) is trained; other blocks get no gradient at all
    assert len(with_grad) == 2 and with_grad[0][-1] == with_grad[1][-1]

    randomize_up(network)
    network.eval()
    expected = unet_out(unet, inputs)
    assert torch.equal(unet_out(unet, inputs), expected)  # eval uses the full rank, no randomness
    path = tmp_path / "dy.safetensors"
    network.save_weights(path, None, {"ss_network_module": "networks.dylora"})
    state = network.state_dict()
    name = "lora_unet_down_blocks_0_resnets_0_conv1"
    assert tuple(state[f"{name}.lora_down.weight"].shape) == (4, 8, 3, 3)
    assert tuple(state[f"{name}.lora_up.weight"].shape) == (8, 4, 1, 1)
    assert all(k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha")) for k in state)

    # a plain LoRA built from the file reproduces the DyLoRA network at full rank
    te.eval()
    for module in network.all_loras():
        module.multiplier = 0.0
    assert torch.equal(unet_out(unet, inputs), base)
    plain, weights = lora.create_network_from_weights(1.0, str(path), None, te, unet)
    plain.apply_to(te, unet, True, True)
    plain.load_weights(path)
    torch.testing.assert_close(unet_out(unet, inputs), expected, atol=1e-5, rtol=1e-4)


def test_dylora_reloads_its_file(sd1, tmp_path):
    te, unet = sd1
    network = dylora.create_network(1.0, 4, 1, None, te, unet, unit="2")
    randomize_up(network)
    path = tmp_path / "dy.safetensors"
    network.save_weights(path, None, {})
    again, _ = dylora.create_network_from_weights(1.0, str(path), None, te, unet, unit="2")
    again.load_weights(path)
    for key, value in network.state_dict().items():
        assert torch.equal(again.state_dict()[key], value)


def test_dylora_arg_checks(sd1):
    te, unet = sd1
    with pytest.raises(NetworkArgsError, match="multiple of unit"):
        dylora.create_network(1.0, 4, 1, None, te, unet, unit="3")
    with pytest.raises(NetworkArgsError, match="conv_dim"):
        dylora.create_network(1.0, 4, 1, None, te, unet, conv_dim="8")
    with pytest.raises(NetworkArgsError, match="'units'.*'unit'"):
        dylora.create_network(1.0, 4, 1, None, te, unet, units="2")
