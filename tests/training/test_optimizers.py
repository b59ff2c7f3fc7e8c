from __future__ import annotations

import importlib.util

import pytest
import torch

from backend.training import optimizers
from backend.training.optimizers import (
    OptimizerConfig,
    OptimizerUnavailable,
    check_optimizer_available,
    create_optimizer,
    parse_kv_args,
    resolve_optimizer_name,
    set_optimizer_train_mode,
)

CPU_OPTIMIZERS = ["AdamW", "SGDNesterov", "Adafactor", "Prodigy", "RAdam", "torch.optim.Adam"]
BNB_OPTIMIZERS = [
    "AdamW8bit", "PagedAdamW", "PagedAdamW8bit", "PagedAdamW32bit", "Lion8bit", "PagedLion8bit", "SGDNesterov8bit",
    "bitsandbytes.optim.AdEMAMix8bit",
]  # fmt: skip


def _param() -> torch.nn.Parameter:
    # 64x64: large enough for bitsandbytes to really use 8-bit state (min_8bit_size = 4096).
    return torch.nn.Parameter(torch.ones(64, 64))


def _step_changes_param(name: str, lr: float = 1e-2, args: list[str] | None = None) -> None:
    param = _param()
    setup = create_optimizer(name, [param], lr, args, device="cpu")
    param.grad = torch.full_like(param, 0.5)
    setup.optimizer.step()
    assert not torch.equal(param.detach(), torch.ones(64, 64)), f"{name} did not move the parameter"


def test_parse_kv_args() -> None:
    parsed = parse_kv_args(
        [
            "weight_decay=0.01",
            "betas=0.9,0.999",
            "decouple=True",
            "safeguard_warmup=false",
            "decay_type=cosine",
            "x= 3 ",
        ],
        "optimizer_args",
    )
    assert parsed == {
        "weight_decay": 0.01,
        "betas": (0.9, 0.999),
        "decouple": True,
        "safeguard_warmup": False,
        "decay_type": "cosine",
        "x": 3,
    }
    assert parse_kv_args(None, "x") == {}
    with pytest.raises(ValueError, match="key=value"):
        parse_kv_args(["weight_decay"], "optimizer_args")


def test_resolve_optimizer_name() -> None:
    def ns(**kw: object) -> OptimizerConfig:
        return OptimizerConfig(**{"optimizer_type": "", "use_8bit_adam": False, "use_lion_optimizer": False,
                                  "optimizer_args": None, "learning_rate": 1e-4, **kw})

    assert resolve_optimizer_name(ns()) == "AdamW"
    assert resolve_optimizer_name(ns(optimizer_type="adamw8BIT")) == "AdamW8bit"
    assert resolve_optimizer_name(ns(use_8bit_adam=True)) == "AdamW8bit"
    assert resolve_optimizer_name(ns(use_8bit_adam=True, optimizer_type="AdamW")) == "AdamW8bit"
    assert resolve_optimizer_name(ns(use_lion_optimizer=True)) == "Lion"
    assert (
        resolve_optimizer_name(ns(optimizer_type="bitsandbytes.optim.AdEMAMix8bit"))
        == "bitsandbytes.optim.AdEMAMix8bit"
    )
    with pytest.raises(ValueError, match="optimizer_type=Prodigy"):
        resolve_optimizer_name(ns(use_8bit_adam=True, optimizer_type="Prodigy"))
    with pytest.raises(ValueError, match="together"):
        resolve_optimizer_name(ns(use_8bit_adam=True, use_lion_optimizer=True))


@pytest.mark.parametrize("name", CPU_OPTIMIZERS)
def test_cpu_optimizers_step(name: str) -> None:
    _step_changes_param(name, lr=1.0 if name == "Prodigy" else 1e-2)


@pytest.mark.parametrize("name", BNB_OPTIMIZERS)
def test_bitsandbytes_optimizers_step_on_cpu(name: str) -> None:
    _step_changes_param(name)


def test_bitsandbytes_on_cpu_is_available_and_really_8bit() -> None:
    # bitsandbytes >= 0.45 runs its 8-bit optimizers on CPU; the preflight check accepts them there.
    assert check_optimizer_available("AdamW8bit", "cpu") is None
    param = _param()
    setup = create_optimizer("AdamW8bit", [param], 1e-3, device="cpu")
    param.grad = torch.ones_like(param)
    setup.optimizer.step()
    assert setup.optimizer.state[param]["state1"].dtype == torch.uint8


def test_adamw_is_fused_unless_told_otherwise() -> None:
    setup = create_optimizer("AdamW", [_param()], 1e-3, ["weight_decay=0.01"], device="cpu")
    assert setup.optimizer.param_groups[0]["fused"] is True
    assert setup.description == "torch.optim.adamw.AdamW(weight_decay=0.01)"
    setup = create_optimizer("AdamW", [_param()], 1e-3, ["foreach=False"], device="cpu")
    assert not setup.optimizer.param_groups[0]["fused"]
    assert setup.description == "torch.optim.adamw.AdamW(foreach=False)"


def test_sgd_nesterov_defaults_and_description() -> None:
    setup = create_optimizer("sgdnesterov", [_param()], 1e-3)
    group = setup.optimizer.param_groups[0]
    assert group["nesterov"] is True and group["momentum"] == 0.9
    assert setup.name == "SGDNesterov"
    assert (
        setup.description == "torch.optim.sgd.SGD(momentum=0.9)"
    )  # nesterov is fixed, not shown (sd-scripts)


def test_param_groups_keep_their_learning_rates() -> None:
    groups = [{"params": [_param()], "lr": 1e-4}, {"params": iter([_param()]), "lr": 5e-5}]
    setup = create_optimizer("AdamW", groups, 1e-3)
    assert [g["lr"] for g in setup.optimizer.param_groups] == [1e-4, 5e-5]


def test_adafactor_relative_step_drops_lrs(caplog: pytest.LogCaptureFixture) -> None:
    groups = [{"params": [_param()], "lr": 1e-4}, {"params": [_param()], "lr": 5e-5}]
    setup = create_optimizer("Adafactor", groups, 1e-3)
    assert groups[0]["lr"] == 1e-4  # the caller's dicts are not modified
    assert setup.optimizer.defaults["relative_step"] is True
    assert all(g["lr"] is None for g in setup.optimizer.param_groups)
    assert "ignores unet_lr" in caplog.text
    assert setup.description == "transformers.optimization.Adafactor(relative_step=True)"
    fixed = create_optimizer("Adafactor", [_param()], 1e-3, ["relative_step=False", "scale_parameter=False"])
    assert fixed.optimizer.param_groups[0]["lr"] == 1e-3


def test_dadaptation_style_lr_warning(caplog: pytest.LogCaptureFixture) -> None:
    create_optimizer("Prodigy", [_param()], 1e-4)
    assert "around 1.0" in caplog.text


def test_missing_package_names_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        optimizers.importlib.util,
        "find_spec",
        lambda n, *a: None if n in ("dadaptation", "lion_pytorch") else real(n, *a),
    )
    message = check_optimizer_available("DAdaptAdam", "cpu")
    assert message is not None and "pip install dadaptation" in message
    with pytest.raises(OptimizerUnavailable, match="pip install lion-pytorch"):
        create_optimizer("Lion", [_param()], 1e-4)


def test_unknown_names_and_bad_arguments() -> None:
    message = check_optimizer_available("AdamW9bit")
    assert message is not None and "did you mean AdamW8bit" in message
    with pytest.raises(OptimizerUnavailable, match="has no NoSuchOpt"):
        create_optimizer("torch.optim.NoSuchOpt", [_param()], 1e-3)
    with pytest.raises(ValueError, match="rejected its arguments"):
        create_optimizer("AdamW", [_param()], 1e-3, ["weight_decai=0.1"])
    message = check_optimizer_available("AdamW", "cpu", ["weight_decai=0.1"])
    assert message is not None and "weight_decai" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_check_reports_unusable_device() -> None:
    message = check_optimizer_available("AdamW", "cuda")
    assert message is not None and "cuda" in message


def test_schedule_free_mode_switch_is_noop_for_plain_optimizers() -> None:
    setup = create_optimizer("AdamW", [_param()], 1e-3)
    set_optimizer_train_mode(setup.optimizer, False)
    set_optimizer_train_mode(setup.optimizer, True)
    assert not optimizers.is_schedule_free(setup.optimizer)
