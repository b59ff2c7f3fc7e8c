"""Every bitsandbytes optimizer the trainer offers, on the device: built by the trainer's own factory,
its 8-bit (and paged) state really used, its steps close to the 32-bit algorithm's, and a LoRA run
with it. bitsandbytes is optional: without it (or when it does not import) these tests skip and say so.
"""

from __future__ import annotations

import pytest
import torch

from backend.training import optimizers
from backend.training.optimizers import check_optimizer_available, create_optimizer
from tests.cuda.support import assert_finite, differs, finite_losses, train_here
from tests.end_to_end.helpers import base_flags

# The trainer's own list (private table): a new bitsandbytes entry is tested without editing this file.
BNB_OPTIMIZERS = [name for name, spec in optimizers._SPECS.items() if spec.pip == "bitsandbytes"]
LR = 1e-3
STEPS = 5


@pytest.fixture(autouse=True)
def bitsandbytes() -> None:
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # ImportError, or a binary that does not match this torch/CUDA
        pytest.skip(f"bitsandbytes does not import here ({type(exc).__name__}: {str(exc)[:200]}); its 8-bit "
                    "optimizers cannot be tested")


def reference_step(name: str, param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The 32-bit algorithm each optimizer quantizes, with the factory's defaults: `STEPS` steps on `grad`."""
    param = param.clone()
    if "Lion" in name:  # sign(b1 m + (1 - b1) g), then m = b2 m + (1 - b2) g; betas (0.9, 0.99), no decay
        momentum = torch.zeros_like(param)
        for _ in range(STEPS):
            param -= LR * torch.sign(0.9 * momentum + 0.1 * grad)
            momentum = 0.99 * momentum + 0.01 * grad
        return param
    weight = torch.nn.Parameter(param)
    if "SGD" in name:
        # bitsandbytes' SGD8bit takes nesterov=True (sd-scripts' SGDNesterov8bit passes it) but its kernel
        # has no Nesterov step: it is momentum SGD. Measured here, so a release that adds it is noticed.
        reference = torch.optim.SGD([weight], lr=LR, momentum=0.9)
    else:  # AdamW, 8-bit or paged: bitsandbytes' defaults are torch's (betas 0.9/0.999, eps 1e-8, decay 0.01)
        reference = torch.optim.AdamW([weight], lr=LR, weight_decay=1e-2)
    for _ in range(STEPS):
        weight.grad = grad.clone()
        reference.step()
    return weight.detach()


@pytest.mark.parametrize("name", BNB_OPTIMIZERS)
def test_8bit_state_and_steps_match_the_32bit_algorithm(name, device) -> None:
    assert check_optimizer_available(name, device) is None  # what preflight asks before loading a model
    generator = torch.Generator().manual_seed(0)
    # 256 x 512: above bitsandbytes' 4096 elements for 8-bit state and 1e5 for paged state. Gradient
    # magnitudes in [0.5, 1.5]: no element so small that quantizing its state flips a sign.
    start = torch.randn(256, 512, generator=generator)
    grad = torch.sign(torch.randn(256, 512, generator=generator)) * (0.5 + torch.rand(256, 512, generator=generator))
    weight = torch.nn.Parameter(start.clone().to(device))
    optimizer = create_optimizer(name, [weight], LR, device=device).optimizer
    for _ in range(STEPS):
        weight.grad = grad.to(device)
        optimizer.step()
    state = optimizer.state[weight]
    eight_bit = "8bit" in name
    assert state["state1"].dtype == (torch.uint8 if eight_bit else torch.float32)
    if device.type == "cuda" and name.startswith("Paged"):
        assert getattr(state["state1"], "is_paged", False), "paged optimizer state is not in paged memory"

    moved = weight.detach().cpu() - start
    expected = reference_step(name, start, grad) - start
    assert torch.isfinite(moved).all()
    cosine = torch.nn.functional.cosine_similarity(moved.flatten(), expected.flatten(), dim=0)
    ratio = moved.norm() / expected.norm()
    assert cosine > 0.99 and 0.9 < ratio < 1.1, f"{name}: cosine {cosine:.4f}, norm ratio {ratio:.4f}"


@pytest.mark.parametrize(("name", "precision"), [
    # One run per optimizer: the wiring is shared, so all but AdamW8bit are `slow` (the state test covers them).
    *[pytest.param(name, "bf16", id=f"{name}-bf16", marks=() if name == "AdamW8bit" else pytest.mark.slow)
      for name in BNB_OPTIMIZERS],
    pytest.param("AdamW8bit", "fp16", id="AdamW8bit-fp16", marks=pytest.mark.cuda_only),  # behind the GradScaler
])
def test_lora_trains_with_the_optimizer(tiny, train_dir, tmp_path, device, name, precision) -> None:
    out = tmp_path / "out"
    result = train_here("train_network", base_flags(
        tiny.get("sd15").path, train_dir, out, "--max_train_steps", "3", "--learning_rate", str(LR),
        "--network_dim", "4", "--mixed_precision", precision, "--optimizer_type", name, "--save_every_n_steps", "1",
    ), device).ok().result
    finite_losses(result)
    assert_finite(out / "tiny.safetensors")
    assert differs(out / "tiny-step00000001.safetensors", out / "tiny.safetensors")
