"""Optimizer construction by sd-scripts name (`--optimizer_type`), or any class by dotted path.

Decisions worth knowing:
- Optional packages (bitsandbytes, lion-pytorch, prodigyopt, dadaptation, schedulefree,
  transformers for Adafactor) are imported only when their optimizer is chosen. A missing one is an
  `OptimizerUnavailable` error that names the pip package.
- `check_optimizer_available()` builds the optimizer on a 64x64 parameter on the target device and
  runs one step, so a broken or device-incapable package is reported before minutes of model
  loading. bitsandbytes 0.50 runs its 8-bit optimizers on CPU (slowly) and silently falls back to
  unpaged state for Paged* there, so CPU is allowed; the trial step catches builds that cannot.
- torch's AdamW gets `fused=True` on every device type torch has fused kernels for (CUDA, CPU,
  MPS, XPU): it is several times faster than the per-tensor loop, also on CPU. Otherwise torch's own
  default applies (foreach where it has kernels). An explicit `fused=`/`foreach=` in
  `--optimizer_args` wins.
- `--optimizer_args` values are parsed like sd-scripts (`ast.literal_eval`, so `betas=0.9,0.999` is a
  tuple), plus `true`/`false` in any case as booleans and a plain-string fallback instead of a crash.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from backend.messages import msg
from backend.training.option_slice import OptionSlice

logger = logging.getLogger(__name__)


class OptimizerUnavailable(RuntimeError):
    """The chosen optimizer cannot be built here (unknown name, missing package, unsupported device)."""


@dataclass(frozen=True)
class _Spec:
    module: str
    cls: str
    pip: str | None  # None: part of torch
    defaults: tuple[tuple[str, Any], ...] = ()  # put into the kwargs (and metadata) unless given
    fixed: tuple[tuple[str, Any], ...] = ()  # always passed, not shown in metadata (as sd-scripts)


_BNB = "bitsandbytes.optim"
_SPECS: dict[str, _Spec] = {
    "AdamW": _Spec("torch.optim", "AdamW", None),
    "AdamW8bit": _Spec(_BNB, "AdamW8bit", "bitsandbytes"),
    "PagedAdamW": _Spec(_BNB, "PagedAdamW", "bitsandbytes"),
    "PagedAdamW8bit": _Spec(_BNB, "PagedAdamW8bit", "bitsandbytes"),
    "PagedAdamW32bit": _Spec(_BNB, "PagedAdamW32bit", "bitsandbytes"),
    "Lion": _Spec("lion_pytorch", "Lion", "lion-pytorch"),
    "Lion8bit": _Spec(_BNB, "Lion8bit", "bitsandbytes"),
    "PagedLion8bit": _Spec(_BNB, "PagedLion8bit", "bitsandbytes"),
    # Nesterov needs momentum; sd-scripts sets 0.9 when the user gives none.
    "SGDNesterov": _Spec("torch.optim", "SGD", None, (("momentum", 0.9),), (("nesterov", True),)),
    "SGDNesterov8bit": _Spec(_BNB, "SGD8bit", "bitsandbytes", (("momentum", 0.9),), (("nesterov", True),)),
    "Adafactor": _Spec("transformers.optimization", "Adafactor", "transformers", (("relative_step", True),)),
    "Prodigy": _Spec("prodigyopt", "Prodigy", "prodigyopt"),
    "DAdaptation": _Spec("dadaptation.experimental", "DAdaptAdamPreprint", "dadaptation"),
    "DAdaptAdamPreprint": _Spec("dadaptation.experimental", "DAdaptAdamPreprint", "dadaptation"),
    "DAdaptAdaGrad": _Spec("dadaptation", "DAdaptAdaGrad", "dadaptation"),
    "DAdaptAdam": _Spec("dadaptation", "DAdaptAdam", "dadaptation"),
    "DAdaptAdan": _Spec("dadaptation", "DAdaptAdan", "dadaptation"),
    "DAdaptAdanIP": _Spec("dadaptation.experimental", "DAdaptAdanIP", "dadaptation"),
    "DAdaptLion": _Spec("dadaptation", "DAdaptLion", "dadaptation"),
    "DAdaptSGD": _Spec("dadaptation", "DAdaptSGD", "dadaptation"),
    "RAdamScheduleFree": _Spec("schedulefree", "RAdamScheduleFree", "schedulefree"),
    "AdamWScheduleFree": _Spec("schedulefree", "AdamWScheduleFree", "schedulefree"),
    "SGDScheduleFree": _Spec("schedulefree", "SGDScheduleFree", "schedulefree"),
}
OPTIMIZER_NAMES: tuple[str, ...] = tuple(_SPECS)
_BY_LOWER = {name.lower(): name for name in _SPECS}


@dataclass
class OptimizerSetup:
    """What `create_optimizer` built, plus what the metadata and the scheduler need to know."""

    optimizer: torch.optim.Optimizer
    name: str  # canonical name ("AdamW8bit") or the dotted path as given
    class_path: str  # "torch.optim.adamw.AdamW"
    kwargs: dict[str, Any] = field(default_factory=dict)  # as shown in metadata (sd-scripts' selection)

    @property
    def args_text(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.kwargs.items())

    @property
    def description(self) -> str:
        """The `ss_optimizer` metadata value, e.g. `torch.optim.adamw.AdamW(weight_decay=0.01)`."""
        return self.class_path + (f"({self.args_text})" if self.kwargs else "")


def parse_kv_args(items: Sequence[str] | None, option: str) -> dict[str, Any]:
    """Parse `["key=value", ...]` (for --optimizer_args / --lr_scheduler_args)."""
    parsed: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key:
            raise ValueError(msg("preflight.optimizer.not_key_value", "--{option}: expected key=value, got {item}",
                                 option=option, item=repr(item)))
        if text.lower() in ("true", "false"):
            parsed[key] = text.lower() == "true"
            continue
        try:
            parsed[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed[key] = text  # e.g. decay_type=cosine
    return parsed


@dataclass(frozen=True)
class OptimizerConfig(OptionSlice):
    """The optimizer's options: its name (or the legacy flags that name one), its arguments, its rate."""

    optimizer_type: str | None
    use_8bit_adam: bool
    use_lion_optimizer: bool
    optimizer_args: list[str] | None
    learning_rate: float


def resolve_optimizer_name(config: OptimizerConfig) -> str:
    """The optimizer to use, honouring sd-scripts' legacy `--use_8bit_adam` / `--use_lion_optimizer` flags."""
    given = (config.optimizer_type or "").strip()
    use_8bit = bool(config.use_8bit_adam)
    use_lion = bool(config.use_lion_optimizer)
    if use_8bit and use_lion:
        raise ValueError(msg("preflight.optimizer.legacy_flags", "--use_8bit_adam and --use_lion_optimizer cannot be "
                             "used together"))
    if use_8bit or use_lion:
        alias, flag = ("AdamW8bit", "use_8bit_adam") if use_8bit else ("Lion", "use_lion_optimizer")
        # "AdamW" is the default, so it does not count as a conflicting choice.
        if given.lower() not in ("", "adamw", alias.lower()):
            raise ValueError(msg("preflight.optimizer.legacy_conflict", "--{flag} means optimizer_type={alias}, but "
                                 "optimizer_type={given} is also set", flag=flag, alias=alias, given=given))
        return alias
    return _BY_LOWER.get(given.lower(), given) if given else "AdamW"


def _import_class(module_name: str, cls_name: str, pip: str | None, label: str) -> type:
    top = module_name.split(".")[0]
    if importlib.util.find_spec(top) is None:
        if pip:
            raise OptimizerUnavailable(msg(
                "preflight.optimizer.package_missing", "optimizer {name} needs the Python package {package}, which "
                "is not installed (install it into this project's venv: pip install {pip})",
                name=label, package=repr(pip), pip=pip,
            ))
        raise OptimizerUnavailable(msg(
            "preflight.optimizer.module_missing", "optimizer {name} needs the Python package {package}, which is not "
            "installed (check the class path)", name=label, package=repr(top),
        ))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a present but broken install (e.g. a bitsandbytes binary mismatch)
        raise OptimizerUnavailable(msg("preflight.optimizer.import_failed", "optimizer {name}: importing {module} "
                                       "failed: {error}", name=label, module=module_name, error=exc)) from exc
    try:
        return getattr(module, cls_name)
    except AttributeError:
        if pip:
            raise OptimizerUnavailable(msg(
                "preflight.optimizer.class_missing_old", "optimizer {name}: {module} has no {cls} (the installed "
                "version may be too old)", name=label, module=module_name, cls=cls_name)) from None
        raise OptimizerUnavailable(msg("preflight.optimizer.class_missing", "optimizer {name}: {module} has no {cls}",
                                       name=label, module=module_name, cls=cls_name)) from None


def _resolve(name: str) -> tuple[str, _Spec]:
    canonical = _BY_LOWER.get(name.lower())
    if canonical is not None:
        return canonical, _SPECS[canonical]
    if "." in name:  # any class: package.module.Class
        module_name, _, cls_name = name.rpartition(".")
        return name, _Spec(module_name, cls_name, None)
    if hasattr(torch.optim, name):  # sd-scripts also accepts bare torch.optim names (e.g. RAdam)
        return name, _Spec("torch.optim", name, None)
    close = difflib.get_close_matches(name.lower(), list(_BY_LOWER), n=3, cutoff=0.6)
    known = ", ".join(OPTIMIZER_NAMES)
    if close:
        raise OptimizerUnavailable(msg(
            "preflight.optimizer.unknown_close", "unknown optimizer_type {name} (did you mean {close}?). Known: "
            "{known}, any torch.optim class, or a dotted path such as bitsandbytes.optim.AdEMAMix8bit",
            name=repr(name), close=", ".join(_BY_LOWER[c] for c in close), known=known,
        ))
    raise OptimizerUnavailable(msg(
        "preflight.optimizer.unknown", "unknown optimizer_type {name}. Known: {known}, any torch.optim class, or a "
        "dotted path such as bitsandbytes.optim.AdEMAMix8bit", name=repr(name), known=known,
    ))


def _group_lrs(groups: list[Any], lr: float) -> set[float]:
    return {g.get("lr", lr) for g in groups if isinstance(g, dict)} or {lr}


def _fused_supported(device: torch.device) -> bool:
    try:  # private torch helper (stable since 2.2); without it, assume fused kernels only on CUDA
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:
        return device.type == "cuda"
    return device.type in _get_fused_kernels_supported_devices()


def _build(
    name: str,
    params: Iterable[Any],
    learning_rate: float,
    optimizer_args: Sequence[str] | None,
    device: torch.device | None,
    warn: Callable[[str], None],
) -> OptimizerSetup:
    canonical, spec = _resolve(name)
    cls = _import_class(spec.module, spec.cls, spec.pip, canonical)
    groups = [_copy_group(g) if isinstance(g, dict) else g for g in params]  # we may edit group dicts
    if not groups:
        raise ValueError("no parameters to optimize")
    kwargs = parse_kv_args(optimizer_args, "optimizer_args")
    for key, value in spec.defaults:
        kwargs.setdefault(key, value)
    lr: float | None = learning_rate

    if canonical.startswith("DAdapt") or canonical == "Prodigy":
        lrs = _group_lrs(groups, learning_rate)
        if min(lrs) <= 0.1:
            warn(msg("run.optimizer.adaptive_rate", "{optimizer} adapts the step size itself; set the learning rate "
                     "around 1.0 (got {rate})", optimizer=canonical, rate=f"{min(lrs):g}"))
        if len(lrs) > 1:
            warn(msg("run.optimizer.adaptive_several_rates", "{optimizer} with several learning rates (e.g. U-Net and "
                     "text encoder): only the first one takes effect", optimizer=canonical))
    elif canonical == "Adafactor":
        if not kwargs["relative_step"] and kwargs.get("warmup_init", False):
            warn(msg("run.optimizer.adafactor_warmup_init", "Adafactor: warmup_init=True requires relative_step=True; "
                     "enabling relative_step"))
            kwargs["relative_step"] = True
        if kwargs["relative_step"]:
            # Adafactor computes its own step size; the learning rate becomes the AdafactorSchedule's
            # initial value (see schedulers.py) and per-group rates are dropped, as in sd-scripts.
            lr = None
            dropped = [g.pop("lr", None) for g in groups if isinstance(g, dict)]
            if any(group_lr is not None for group_lr in dropped):
                warn(msg("run.optimizer.adafactor_group_rates", "Adafactor with relative_step=True ignores unet_lr / "
                         "text_encoder_lr"))

    hidden = dict(spec.fixed)
    if canonical == "AdamW" and "fused" not in kwargs and "foreach" not in kwargs:
        target = device if device is not None else _first_param_device(groups)
        if target is not None and _fused_supported(target):
            hidden["fused"] = True
    return _finish(cls, groups, lr, kwargs, hidden, canonical)


def _copy_group(group: dict[str, Any]) -> dict[str, Any]:
    params = group["params"]
    return dict(group, params=[params] if isinstance(params, torch.Tensor) else list(params))


def _first_param_device(groups: list[Any]) -> torch.device | None:
    first = groups[0]
    if isinstance(first, dict):
        first = first["params"][0] if first["params"] else None
    return first.device if isinstance(first, torch.Tensor) else None


def _finish(
    cls: type, groups: list[Any], lr: float | None, kwargs: dict[str, Any], hidden: dict[str, Any], name: str
) -> OptimizerSetup:
    try:
        optimizer = cls(groups, lr=lr, **kwargs, **hidden)
    except TypeError as exc:  # usually a misspelled --optimizer_args key
        raise ValueError(msg("preflight.optimizer.rejected_args", "optimizer {name} rejected its arguments "
                             "{arguments}: {error}", name=name, arguments=kwargs, error=exc)) from exc
    # Schedule-free optimizers must be in train mode for training (and eval mode for sampling/saving).
    set_optimizer_train_mode(optimizer, True)
    return OptimizerSetup(optimizer, name, f"{cls.__module__}.{cls.__name__}", kwargs)


def create_optimizer(
    name: str,
    param_groups: Iterable[Any],
    learning_rate: float,
    optimizer_args: Sequence[str] | None = None,
    *,
    device: torch.device | str | None = None,
) -> OptimizerSetup:
    """Build the optimizer `name` (see `resolve_optimizer_name`) over params or param-group dicts.

    `device` is where the parameters will live during training (they may still be on CPU now); it
    decides whether fused kernels are used. Raises `OptimizerUnavailable` or `ValueError`.
    """
    dev = torch.device(device) if device is not None else None
    setup = _build(name, param_groups, learning_rate, optimizer_args, dev, logger.warning)
    logger.info("optimizer: %s", setup.description)
    return setup


def check_optimizer_available(
    name: str, device: torch.device | str = "cpu", optimizer_args: Sequence[str] | None = None
) -> str | None:
    """None if `name` can be built and stepped on `device`; otherwise a message saying why not.

    Cheap (one 64x64 parameter, one step) and independent of any model, for preflight checks.
    """
    dev = torch.device(device)
    try:
        # 64x64 = 4096 elements: the smallest size bitsandbytes really quantizes (min_8bit_size).
        param = torch.nn.Parameter(torch.zeros(64, 64, device=dev))
        setup = _build(name, [param], 1.0, optimizer_args, dev, lambda _msg: None)
        param.grad = torch.full_like(param, 0.01)
        setup.optimizer.step()
    except OptimizerUnavailable as exc:
        return str(exc)
    except Exception as exc:
        return msg("preflight.optimizer.does_not_work", "optimizer {name} does not work on {device}: {error}",
                   name=name, device=dev, error=f"{type(exc).__name__}: {exc}")
    return None


def set_optimizer_train_mode(optimizer: torch.optim.Optimizer, training: bool) -> None:
    """Switch schedule-free optimizers between train and eval weights; a no-op for all others.

    Call with False before sampling, validation or saving, and with True afterwards.
    """
    method = getattr(optimizer, "train" if training else "eval", None)
    if callable(method):
        method()


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    return type(optimizer).__name__.endswith("ScheduleFree")
