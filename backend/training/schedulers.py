"""Learning-rate schedulers by sd-scripts name (`--lr_scheduler`), or any class (`--lr_scheduler_type`).

Same curves as sd-scripts' `get_scheduler_fix`: the classic six come from diffusers, the newer
ones (inverse_sqrt, cosine_with_min_lr, warmup_stable_decay) from transformers, `adafactor` is
transformers' AdafactorSchedule. Differences, on purpose:
- `lr_warmup_steps` / `lr_decay_steps`: a float below 1 is a ratio of the total steps, anything else
  a step count. (sd-scripts treats every float as a ratio, so a TOML `lr_warmup_steps = 100.0`
  meant 100x the whole run there.)
- A warmup given to a scheduler without one (constant, adafactor, a custom class, a schedule-free
  optimizer) is an error that says what to use instead, as sd-scripts errors too (it silently
  ignored it for schedule-free optimizers).
- With Adafactor's relative_step (its default) the `adafactor` schedule is chosen automatically,
  with the learning rate as its initial value, exactly as sd-scripts does.
- Steps are optimizer steps whatever the number of processes (the trainer makes accelerate's wrapper
  step once per optimizer step). sd-scripts multiplies the total by the process count instead, which
  left warmup counts, step rules and custom schedulers running num_processes times too fast.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from backend.messages import msg
from backend.training.optimizers import (
    OptimizerConfig,
    is_schedule_free,
    parse_kv_args,
    resolve_optimizer_name,
)
from backend.training.option_slice import OptionSlice

logger = logging.getLogger(__name__)

SCHEDULER_NAMES: tuple[str, ...] = (
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "adafactor",
    "piecewise_constant",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)


@dataclass(frozen=True)
class SchedulerConfig(OptionSlice):
    """The learning-rate schedule's options (sd-scripts' names)."""

    lr_scheduler: str
    learning_rate: float
    lr_warmup_steps: int | float
    lr_decay_steps: int | float
    lr_scheduler_num_cycles: int
    lr_scheduler_power: float
    lr_scheduler_args: list[str] | None
    lr_scheduler_type: str | None
    lr_scheduler_timescale: int | None
    lr_scheduler_min_lr_ratio: float | None


def resolve_step_count(value: int | float | None, total_steps: int) -> int:
    """`lr_warmup_steps`-style value: a float in [0, 1) is a ratio of `total_steps`, otherwise a count."""
    if value is None:
        return 0
    if value < 0:
        raise ValueError(f"step count must not be negative, got {value}")
    if isinstance(value, float) and value < 1:
        return int(value * total_steps)
    return int(value)


def _is_relative_step_adafactor(optimizer: torch.optim.Optimizer) -> bool:
    return type(optimizer).__name__ == "Adafactor" and bool(optimizer.defaults.get("relative_step"))


def _custom_scheduler(
    optimizer: torch.optim.Optimizer, class_path: str, kwargs: dict[str, Any]
) -> LRScheduler:
    if "." in class_path:
        module_name, _, cls_name = class_path.rpartition(".")
        module: Any = importlib.import_module(module_name)
    else:  # bare names come from torch.optim.lr_scheduler, as in sd-scripts
        module, cls_name = torch.optim.lr_scheduler, class_path
    try:
        cls = getattr(module, cls_name)
    except AttributeError:
        raise ValueError(msg("run.schedule.no_class", "lr_scheduler_type {path}: no class {name} in {module}",
                             path=repr(class_path), name=cls_name, module=module.__name__)) from None
    return cls(optimizer, **kwargs)


def schedule_problem(
    name: str, *, warmup: int, decay: int, total: int, scheduler_type: str = "", kwargs: dict[str, Any] | None = None,
    min_lr_ratio: float | None = None, schedule_free: bool = False, relative_step_adafactor: bool = False,
) -> str | None:
    """Why these schedule settings cannot be used together, or None. Pure, so preflight asks it before any
    model is loaded (`run_schedule_problem`) and `create_scheduler` refuses the same combinations.
    `warmup`/`decay` are step counts (`resolve_step_count`)."""
    kwargs = kwargs or {}
    if schedule_free:
        if warmup:
            return msg("preflight.schedule.schedule_free_warmup", "a schedule-free optimizer does not use "
                       "lr_warmup_steps (got {warmup} steps); pass its own warmup via --optimizer_args "
                       "warmup_steps=N", warmup=warmup)
        return None
    if scheduler_type:
        if warmup:
            return msg("preflight.schedule.custom_warmup", "lr_scheduler_type {scheduler} does not use "
                       "lr_warmup_steps (got {warmup} steps); set lr_warmup_steps to 0",
                       scheduler=scheduler_type, warmup=warmup)
        return None
    if relative_step_adafactor:
        name = "adafactor"  # chosen automatically, as sd-scripts does
    if name == "adafactor":
        if not relative_step_adafactor:
            return msg("preflight.schedule.adafactor_needs_optimizer", "lr_scheduler adafactor needs optimizer_type "
                       "Adafactor with relative_step=True")
        if warmup:
            return msg("preflight.schedule.adafactor_warmup", "lr_scheduler adafactor does not use lr_warmup_steps "
                       "(got {warmup} steps); Adafactor warms up itself with --optimizer_args warmup_init=True",
                       warmup=warmup)
        return None
    if name not in SCHEDULER_NAMES:
        return msg("preflight.schedule.unknown", "unknown lr_scheduler {name}; choose one of {names}",
                   name=repr(name), names=", ".join(SCHEDULER_NAMES))
    if name == "constant" and warmup:
        return msg("preflight.schedule.constant_warmup", "lr_scheduler constant does not use lr_warmup_steps (got "
                   "{warmup} steps); use lr_scheduler constant_with_warmup, or set lr_warmup_steps to 0",
                   warmup=warmup)
    if name == "cosine_with_min_lr" and min_lr_ratio is None and "min_lr" not in kwargs and "min_lr_rate" not in kwargs:
        return msg("preflight.schedule.min_lr_ratio_missing", "lr_scheduler cosine_with_min_lr needs "
                   "lr_scheduler_min_lr_ratio (e.g. 0.1)")
    if name == "warmup_stable_decay" and warmup + decay > total:
        return msg("preflight.schedule.wsd_too_long", "warmup ({warmup}) + decay ({decay}) steps exceed the {total} "
                   "training steps", warmup=warmup, decay=decay, total=total)
    return None


def run_schedule_problem(config: SchedulerConfig, optimizer: OptimizerConfig, total_steps: int) -> str | None:
    """`schedule_problem` for a run's options, before its optimizer exists (read from the options instead)."""
    try:
        optimizer_name = resolve_optimizer_name(optimizer)
        optimizer_kwargs = parse_kv_args(optimizer.optimizer_args, "optimizer_args")
    except ValueError:  # reported by the optimizer's own check
        optimizer_name, optimizer_kwargs = "", {}
    try:
        kwargs = parse_kv_args(config.lr_scheduler_args, "lr_scheduler_args")
        warmup = resolve_step_count(config.lr_warmup_steps, total_steps)
        decay = resolve_step_count(config.lr_decay_steps, total_steps)
    except ValueError as exc:
        return str(exc)
    adafactor = optimizer_name.rpartition(".")[2] == "Adafactor"
    relative = bool(optimizer_kwargs.get("relative_step", True) or optimizer_kwargs.get("warmup_init", False))
    return schedule_problem(
        config.lr_scheduler, warmup=warmup, decay=decay, total=total_steps,
        scheduler_type=config.lr_scheduler_type or "", kwargs=kwargs, min_lr_ratio=config.lr_scheduler_min_lr_ratio,
        schedule_free=optimizer_name.rpartition(".")[2].endswith("ScheduleFree"),
        relative_step_adafactor=adafactor and relative,
    )


def create_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    name: str = "constant",
    total_steps: int,
    learning_rate: float,
    warmup_steps: int | float = 0,
    decay_steps: int | float = 0,
    num_cycles: int = 1,
    power: float = 1.0,
    scheduler_args: list[str] | None = None,
    scheduler_type: str = "",
    timescale: int | None = None,
    min_lr_ratio: float | None = None,
) -> LRScheduler:
    """Build the LR scheduler; `total_steps` is max_train_steps (optimizer steps)."""
    total = total_steps
    warmup = resolve_step_count(warmup_steps, total)
    decay = resolve_step_count(decay_steps, total)
    kwargs = parse_kv_args(scheduler_args, "lr_scheduler_args")
    problem = schedule_problem(
        name, warmup=warmup, decay=decay, total=total, scheduler_type=scheduler_type, kwargs=kwargs,
        min_lr_ratio=min_lr_ratio, schedule_free=is_schedule_free(optimizer),
        relative_step_adafactor=_is_relative_step_adafactor(optimizer),
    )
    if problem:
        raise ValueError(problem)

    if is_schedule_free(optimizer):
        return LambdaLR(optimizer, lambda _step: 1.0)  # reports the lr; schedule-free needs no schedule
    if scheduler_type:
        return _custom_scheduler(optimizer, scheduler_type, kwargs)

    if _is_relative_step_adafactor(optimizer) and name != "adafactor":
        logger.info("Adafactor with relative_step: using the adafactor lr scheduler instead of %s", name)
        name = "adafactor"
    if name == "adafactor":
        from transformers.optimization import AdafactorSchedule

        return AdafactorSchedule(optimizer, learning_rate)

    from diffusers import optimization as dopt

    if name == "constant":
        return dopt.get_constant_schedule(optimizer, **kwargs)
    if name == "constant_with_warmup":
        return dopt.get_constant_schedule_with_warmup(optimizer, num_warmup_steps=warmup, **kwargs)
    if name == "linear":
        return dopt.get_linear_schedule_with_warmup(optimizer, warmup, total, **kwargs)
    if name == "cosine":
        return dopt.get_cosine_schedule_with_warmup(optimizer, warmup, total, **kwargs)
    if name == "cosine_with_restarts":
        return dopt.get_cosine_with_hard_restarts_schedule_with_warmup(
            optimizer, warmup, total, num_cycles=num_cycles, **kwargs
        )
    if name == "polynomial":
        return dopt.get_polynomial_decay_schedule_with_warmup(optimizer, warmup, total, power=power, **kwargs)
    if name == "piecewise_constant":
        # e.g. --lr_scheduler_args step_rules=1:100,0.5:200,0.1 (multiplier:until_step, ..., final)
        return dopt.get_piecewise_constant_schedule(optimizer, **kwargs)

    from transformers import optimization as topt

    if name == "inverse_sqrt":
        return topt.get_inverse_sqrt_schedule(
            optimizer, num_warmup_steps=warmup, timescale=timescale, **kwargs
        )
    if name == "cosine_with_min_lr":
        kwargs.setdefault("min_lr_rate", min_lr_ratio)
        return topt.get_cosine_with_min_lr_schedule_with_warmup(
            optimizer, warmup, total, num_cycles=num_cycles / 2, **kwargs
        )
    if name == "warmup_stable_decay":
        return topt.get_wsd_schedule(
            optimizer,
            num_warmup_steps=warmup,
            num_decay_steps=decay,
            num_stable_steps=total - warmup - decay,
            num_cycles=num_cycles / 2,
            min_lr_ratio=min_lr_ratio or 0.0,
            **kwargs,
        )
    raise AssertionError(f"lr_scheduler {name!r} is in SCHEDULER_NAMES but has no schedule here")


def create_run_scheduler(optimizer: torch.optim.Optimizer, config: SchedulerConfig, total_steps: int) -> LRScheduler:
    """`create_scheduler` with the run's schedule options."""
    return create_scheduler(
        optimizer,
        name=config.lr_scheduler,
        total_steps=total_steps,
        learning_rate=config.learning_rate,
        warmup_steps=config.lr_warmup_steps,
        decay_steps=config.lr_decay_steps,
        num_cycles=config.lr_scheduler_num_cycles,
        power=config.lr_scheduler_power,
        scheduler_args=config.lr_scheduler_args,
        scheduler_type=config.lr_scheduler_type or "",
        timescale=config.lr_scheduler_timescale,
        min_lr_ratio=config.lr_scheduler_min_lr_ratio,
    )
