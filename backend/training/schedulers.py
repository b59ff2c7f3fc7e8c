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
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from backend.training.optimizers import is_schedule_free, parse_kv_args

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
        raise ValueError(
            f"lr_scheduler_type {class_path!r}: no class {cls_name} in {module.__name__}"
        ) from None
    return cls(optimizer, **kwargs)


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

    def no_warmup(what: str, instead: str) -> None:
        if warmup:
            raise ValueError(f"{what} does not use lr_warmup_steps (got {warmup} steps); {instead}")

    if is_schedule_free(optimizer):
        no_warmup("a schedule-free optimizer", "pass its own warmup via --optimizer_args warmup_steps=N")
        return LambdaLR(optimizer, lambda _step: 1.0)  # reports the lr; schedule-free needs no schedule
    if scheduler_type:
        no_warmup(f"lr_scheduler_type {scheduler_type}", "set lr_warmup_steps to 0")
        return _custom_scheduler(optimizer, scheduler_type, kwargs)

    if _is_relative_step_adafactor(optimizer) and name != "adafactor":
        logger.info("Adafactor with relative_step: using the adafactor lr scheduler instead of %s", name)
        name = "adafactor"
    if name == "adafactor":
        if not _is_relative_step_adafactor(optimizer):
            raise ValueError("lr_scheduler adafactor needs optimizer_type Adafactor with relative_step=True")
        no_warmup(
            "lr_scheduler adafactor", "Adafactor warms up itself with --optimizer_args warmup_init=True"
        )
        from transformers.optimization import AdafactorSchedule

        return AdafactorSchedule(optimizer, learning_rate)

    from diffusers import optimization as dopt

    if name == "constant":
        no_warmup(
            "lr_scheduler constant", "use lr_scheduler constant_with_warmup, or set lr_warmup_steps to 0"
        )
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
        if min_lr_ratio is None and "min_lr" not in kwargs and "min_lr_rate" not in kwargs:
            raise ValueError("lr_scheduler cosine_with_min_lr needs lr_scheduler_min_lr_ratio (e.g. 0.1)")
        kwargs.setdefault("min_lr_rate", min_lr_ratio)
        return topt.get_cosine_with_min_lr_schedule_with_warmup(
            optimizer, warmup, total, num_cycles=num_cycles / 2, **kwargs
        )
    if name == "warmup_stable_decay":
        if warmup + decay > total:
            raise ValueError(f"warmup ({warmup}) + decay ({decay}) steps exceed the {total} training steps")
        return topt.get_wsd_schedule(
            optimizer,
            num_warmup_steps=warmup,
            num_decay_steps=decay,
            num_stable_steps=total - warmup - decay,
            num_cycles=num_cycles / 2,
            min_lr_ratio=min_lr_ratio or 0.0,
            **kwargs,
        )
    raise ValueError(f"unknown lr_scheduler {name!r}; choose one of {', '.join(SCHEDULER_NAMES)}")


def create_scheduler_from_args(
    optimizer: torch.optim.Optimizer, args: Any, total_steps: int
) -> LRScheduler:
    """`create_scheduler` with the sd-scripts option names read from a parsed-arguments namespace."""
    return create_scheduler(
        optimizer,
        name=args.lr_scheduler,
        total_steps=total_steps,
        learning_rate=args.learning_rate,
        warmup_steps=args.lr_warmup_steps,
        decay_steps=args.lr_decay_steps,
        num_cycles=args.lr_scheduler_num_cycles,
        power=args.lr_scheduler_power,
        scheduler_args=args.lr_scheduler_args,
        scheduler_type=args.lr_scheduler_type or "",
        timescale=args.lr_scheduler_timescale,
        min_lr_ratio=args.lr_scheduler_min_lr_ratio,
    )
