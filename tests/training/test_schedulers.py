from __future__ import annotations

import math
from argparse import Namespace

import pytest
import torch

from backend.training.optimizers import create_optimizer
from backend.training.schedulers import (
    SchedulerConfig,
    create_run_scheduler,
    create_scheduler,
    resolve_step_count,
)


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _lrs(name: str, steps: list[int], **kw: object) -> list[float]:
    optimizer = _optimizer()
    scheduler = create_scheduler(optimizer, name=name, learning_rate=1.0, **{"total_steps": 100, **kw})  # type: ignore[arg-type]
    seen, out = 0, []
    for target in steps:
        while seen < target:
            optimizer.step()
            scheduler.step()
            seen += 1
        out.append(scheduler.get_last_lr()[0])
    return out


def test_resolve_step_count() -> None:
    assert resolve_step_count(0.1, 100) == 10
    assert resolve_step_count(100.0, 1000) == 100  # a float >= 1 is a count, not a ratio
    assert resolve_step_count(5, 100) == 5
    assert resolve_step_count(None, 100) == 0
    with pytest.raises(ValueError):
        resolve_step_count(-1, 100)


def test_constant_and_warmup() -> None:
    assert _lrs("constant", [0, 50, 100]) == [1.0, 1.0, 1.0]
    assert _lrs("constant_with_warmup", [0, 5, 10, 90], warmup_steps=10) == pytest.approx(
        [0.0, 0.5, 1.0, 1.0]
    )
    # ratio: 0.1 of 100 steps = 10 warmup steps
    assert _lrs("constant_with_warmup", [5], warmup_steps=0.1) == pytest.approx([0.5])


def test_decaying_schedules() -> None:
    assert _lrs("linear", [5, 10, 55, 100], warmup_steps=10) == pytest.approx([0.5, 1.0, 0.5, 0.0])
    assert _lrs("cosine", [0, 50, 100]) == pytest.approx([1.0, 0.5, 0.0], abs=1e-6)
    # two hard restarts: back to 1.0 at the half
    restarts = _lrs("cosine_with_restarts", [25, 49, 50], num_cycles=2)
    assert restarts[0] == pytest.approx(0.5) and restarts[1] < 0.01 and restarts[2] == pytest.approx(1.0)
    # polynomial to lr_end=1e-7 with power 2: (1 - 0.5)^2 of the way
    expected = (1.0 - 1e-7) * 0.25 + 1e-7
    assert _lrs("polynomial", [50], power=2.0) == pytest.approx([expected])


def test_warmup_on_a_scheduler_without_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="constant_with_warmup"):
        create_scheduler(_optimizer(), name="constant", total_steps=10, learning_rate=1.0, warmup_steps=2)
    with pytest.raises(ValueError, match="lr_warmup_steps"):
        create_scheduler(
            _optimizer(), scheduler_type="StepLR", scheduler_args=["step_size=2"], total_steps=10, learning_rate=1.0,
            warmup_steps=0.5,
        )  # fmt: skip


def test_custom_scheduler_type() -> None:
    optimizer = _optimizer()
    scheduler = create_scheduler(
        optimizer,
        scheduler_type="torch.optim.lr_scheduler.StepLR",
        scheduler_args=["step_size=2", "gamma=0.5"],
        total_steps=10,
        learning_rate=1.0,
    )
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr() == [0.25]
    with pytest.raises(ValueError, match="no class Nope"):
        create_scheduler(_optimizer(), scheduler_type="Nope", total_steps=10, learning_rate=1.0)


def test_piecewise_constant() -> None:
    lrs = _lrs("piecewise_constant", [0, 10, 30], scheduler_args=["step_rules=1:10,0.1:20,0.01"])
    assert lrs == pytest.approx([1.0, 0.1, 0.01])


def test_transformers_schedules() -> None:
    assert _lrs("cosine_with_min_lr", [100], min_lr_ratio=0.1) == pytest.approx([0.1])
    with pytest.raises(ValueError, match="lr_scheduler_min_lr_ratio"):
        create_scheduler(_optimizer(), name="cosine_with_min_lr", total_steps=10, learning_rate=1.0)
    wsd = _lrs("warmup_stable_decay", [5, 50, 100], warmup_steps=10, decay_steps=0.2)
    assert (
        wsd[0] == pytest.approx(0.5)
        and wsd[1] == pytest.approx(1.0)
        and wsd[2] == pytest.approx(0.0, abs=1e-6)
    )
    inv = _lrs("inverse_sqrt", [10, 40], warmup_steps=10)
    assert inv == pytest.approx([1.0, 1 / math.sqrt(40 / 10)])  # timescale defaults to the warmup


def test_adafactor_relative_step_gets_the_adafactor_schedule() -> None:
    from transformers.optimization import AdafactorSchedule

    setup = create_optimizer("Adafactor", [torch.nn.Parameter(torch.zeros(4, 4))], 1e-3)
    scheduler = create_scheduler(setup.optimizer, name="cosine", total_steps=10, learning_rate=1e-3)
    assert isinstance(scheduler, AdafactorSchedule)
    assert scheduler.get_last_lr() == [1e-3]  # the initial lr until Adafactor has state
    with pytest.raises(ValueError, match="relative_step=True"):
        create_scheduler(_optimizer(), name="adafactor", total_steps=10, learning_rate=1e-3)


def test_unknown_scheduler() -> None:
    with pytest.raises(ValueError, match="unknown lr_scheduler 'cosin'"):
        create_scheduler(_optimizer(), name="cosin", total_steps=10, learning_rate=1.0)


def test_from_args() -> None:
    config = SchedulerConfig.from_args(Namespace(
        lr_scheduler="linear", learning_rate=1.0, lr_warmup_steps=0, lr_decay_steps=0, lr_scheduler_num_cycles=1,
        lr_scheduler_power=1.0, lr_scheduler_args=None, lr_scheduler_type=None, lr_scheduler_timescale=None,
        lr_scheduler_min_lr_ratio=None,
    ))  # fmt: skip
    optimizer = _optimizer()
    scheduler = create_run_scheduler(optimizer, config, total_steps=4)
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr() == pytest.approx([0.5])
