"""--fused_backward_pass: each weight stepped during the backward pass, with the optimizer's own update."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from backend.options import parse_args
from backend.training.fused_backward import FusedBackwardStep, FusedStepConfig
from backend.training.optimizers import create_optimizer

from .finetune_helpers import ft_flags, prepare_metadata, same, weights
from .helpers import run_trainer
from .test_fine_tune_options import dataset, plan_for  # noqa: F401 - the fixture is used by name

ADAFACTOR_FIXED_LR = ("scale_parameter=False", "relative_step=False", "warmup_init=False")


def model_and_batch() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 16), nn.LayerNorm(16), nn.Linear(16, 3))
    return model, torch.randn(8, 6)


def train(fused: bool, optimizer_name: str, optimizer_args: list[str], steps: int = 3) -> tuple[nn.Module, list[int]]:
    model, batch = model_and_batch()
    params = list(model.parameters())
    optimizer = create_optimizer(optimizer_name, [{"params": params[:4], "lr": 1e-2}, {"params": params[4:], "lr": 3e-3}],
                                 1e-2, optimizer_args).optimizer
    hooks = FusedBackwardStep(optimizer, params, max_grad_norm=0.0, world_size=1) if fused else None
    grads_alive: list[int] = []

    def count_alive(_: torch.Tensor) -> None:
        grads_alive.append(sum(p.grad is not None for p in params))

    for hook_param in params:
        hook_param.register_post_accumulate_grad_hook(count_alive)
    for _ in range(steps):
        model(batch).square().mean().backward()
        if not fused:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if hooks is not None:
        hooks.remove()
    return model, grads_alive


@pytest.mark.parametrize(("name", "optimizer_args"), [("Adafactor", list(ADAFACTOR_FIXED_LR)), ("AdamW", []),
                                                      ("SGDNesterov", [])])
def test_fused_steps_equal_the_optimizers_own_steps(name, optimizer_args) -> None:
    fused, alive_fused = train(True, name, optimizer_args)
    plain, alive_plain = train(False, name, optimizer_args)
    for a, b in zip(fused.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    # The point of it: gradients do not pile up during the backward pass.
    assert max(alive_plain) == len(list(plain.parameters()))
    assert max(alive_fused) <= 2


def test_param_groups_are_intact_after_fused_steps() -> None:
    model, batch = model_and_batch()
    params = list(model.parameters())
    optimizer = torch.optim.AdamW([{"params": params[:4]}, {"params": params[4:], "lr": 1e-4}], lr=1e-3)
    FusedBackwardStep(optimizer, params, max_grad_norm=1.0, world_size=1)
    model(batch).sum().backward()
    assert [len(g["params"]) for g in optimizer.param_groups] == [4, len(params) - 4]
    assert all(p.grad is None for p in params)
    assert len(optimizer.state) == len(params)


@pytest.mark.parametrize(("extra", "message"), [
    (("--optimizer_type", "Prodigy"), "Adafactor, AdamW, SGDNesterov (got Prodigy)"),
    (("--gradient_accumulation_steps", "2"), "set --gradient_accumulation_steps 1"),
])
def test_settings_it_cannot_honour_are_refused(tiny, dataset, extra, message) -> None:  # noqa: F811
    plan = plan_for("fine_tune", tiny.get("sd15").path, dataset, "--fused_backward_pass", *extra)
    assert any(message in error for error in plan.errors), plan.errors


@pytest.mark.parametrize("flags", [("--blockwise_fused_optimizers",), ("--fused_optimizer_groups", "4")])
def test_sd_scripts_grouped_fused_optimizers_run_as_the_fused_backward_pass(tiny, dataset, flags) -> None:  # noqa: F811
    """sd-scripts' per-block / per-group optimizers are, for the optimizers fused here, the per-weight step:
    accepted where sd-scripts takes them (with --blocks_to_swap too), refused for the others by their flag."""
    args = parse_args("sdxl_train", ["--pretrained_model_name_or_path", "m", "--output_dir", "o", *flags])
    assert FusedStepConfig.from_args(args).flag == flags[0]
    plan = plan_for("sdxl_train", tiny.get("sdxl").path, dataset, *flags)
    assert plan.ok, plan.errors
    plan = plan_for("sdxl_train", tiny.get("sdxl").path, dataset, *flags, "--optimizer_type", "Prodigy")
    assert f"{flags[0]} steps each weight on its own here, which is the same update only for optimizers that " \
        "treat weights independently: Adafactor, AdamW, SGDNesterov (got Prodigy)" in plan.errors
    plan = plan_for("flux_train", tiny.get("flux-dev").path, dataset, *flags, "--blocks_to_swap", "2")
    assert not [e for e in plan.errors if "needs --fused_backward_pass" in e], plan.errors  # as sd-scripts: either


def test_fine_tune_with_fused_backward_saves_the_same_model(tiny, tmp_path: Path) -> None:
    model = tiny.get("sd15").path
    folder, metadata = prepare_metadata(tmp_path / "data", model)
    flags = ("--max_train_steps", "3", "--optimizer_type", "Adafactor", "--optimizer_args", *ADAFACTOR_FIXED_LR,
             "--max_grad_norm", "0", "--train_text_encoder", "--save_model_as", "safetensors")
    saved = {}
    for name, extra in (("plain", ()), ("fused", ("--fused_backward_pass",))):
        result = run_trainer("fine_tune", *ft_flags(model, folder, metadata, tmp_path / name, *flags, *extra))
        assert result.returncode == 0, result.stderr[-3000:]
        assert [e["step"] for e in result.of("step")] == [1, 2, 3]
        saved[name] = weights(tmp_path / name / "tiny.safetensors", tiny.get("sd15", single_file=True).tokenizer_cache_dir)
    for part in ("unet", "text_encoder1"):
        plain, fused = saved["plain"][part], saved["fused"][part]
        assert plain.keys() == fused.keys()
        for key in plain:
            torch.testing.assert_close(fused[key], plain[key], rtol=0, atol=1e-6, msg=f"{part}.{key}")
    assert same(saved["plain"]["vae"], saved["fused"]["vae"])
