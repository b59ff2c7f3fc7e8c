"""--gradient_checkpointing on the device: the U-Net's and the trained text encoder's layers really are
recomputed in the backward pass (each runs twice per step: the memory saving is real), and the run
trains what it trains without checkpointing (the text encoder's LoRA included: a checkpointed layer
whose input needs no gradient must not cut the network's gradients off)."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.cuda.support import finite_losses, tensors, train_here
from tests.end_to_end.helpers import base_flags

STEPS = 2


def run(tiny, train_dir: Path, out: Path, device: torch.device, *extra: str) -> tuple[dict[int, float], dict[str, int]]:
    calls = {"unet": 0, "text_encoder": 0}

    def count(name: str):
        def hook(*_args) -> None:
            calls[name] += 1
        return hook

    def observe(run) -> None:
        # Layers inside a checkpointed block (the block's own hook fires once: its recomputation is internal),
        # after the first LoRA layer (before it nothing needs a gradient, so nothing is recomputed).
        run.components.unet.down_blocks[1].resnets[0].conv1.register_forward_hook(count("unet"))
        # `text_model.encoder.layers.0` in transformers 4, `encoder.layers.0` in 5
        fc1 = next(m for n, m in run.components.text_encoders[0].named_modules() if n.endswith("encoder.layers.0.mlp.fc1"))
        fc1.register_forward_hook(count("text_encoder"))

    result = train_here("train_network", base_flags(
        tiny.get("sd15").path, train_dir, out, "--max_train_steps", str(STEPS), "--learning_rate", "1e-3",
        "--network_dim", "4", "--mixed_precision", "bf16", *extra,
    ), device, observe).ok().result
    finite_losses(result)
    return result.losses(), calls


def test_checkpointed_layers_are_recomputed_and_train_alike(tiny, train_dir, tmp_path, device) -> None:
    plain_losses, plain_calls = run(tiny, train_dir, tmp_path / "plain", device)
    losses, calls = run(tiny, train_dir, tmp_path / "checkpointed", device, "--gradient_checkpointing")
    assert plain_calls == {"unet": STEPS, "text_encoder": STEPS}
    assert calls == {"unet": 2 * STEPS, "text_encoder": 2 * STEPS}, "a checkpointed layer was not recomputed"
    assert losses.keys() == plain_losses.keys()
    for step, loss in losses.items():
        assert abs(loss - plain_losses[step]) <= 1e-3 * abs(plain_losses[step]), step
    expected = tensors(tmp_path / "plain" / "tiny.safetensors")
    actual = tensors(tmp_path / "checkpointed" / "tiny.safetensors")
    assert any(key.startswith("lora_te_") and key.endswith("lora_up.weight") and actual[key].abs().max() > 0
               for key in actual), "the text encoder's LoRA did not train under checkpointing"
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=1e-3, atol=1e-5, msg=key)
