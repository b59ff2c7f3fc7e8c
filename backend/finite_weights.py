"""The check that stands before every write of model weights: no NaN or infinite value is ever saved.

A diverging run (learning rate too high, fp16 overflow, broken data) turns weights into NaN or
infinity; a file holding them loads everywhere and produces black or noise images. Weights are also
checked against the precision they are saved in: float32 values above 65504 become infinite when
written as fp16 (`--save_precision fp16`), although the trained weights themselves are finite.

One reduction per tensor (`aminmax` propagates NaN, and its extremes say whether the cast
overflows) and a single host sync for all of them, so a LoRA costs nothing and a whole SDXL model a
fraction of the time its save takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from backend.messages import msg


class NonFiniteWeightsError(ValueError):
    """Weights about to be written hold NaN/infinite values (or overflow the precision they are saved in)."""


@dataclass
class WeightProblems:
    """What a check of weights found: names of non-finite tensors, and of finite ones the save cast overflows."""

    checked: int = 0
    nonfinite: list[str] = field(default_factory=list)
    overflow: list[str] = field(default_factory=list)
    overflow_dtype: torch.dtype | None = None

    def __bool__(self) -> bool:
        return bool(self.nonfinite or self.overflow)

    def merge(self, other: WeightProblems) -> WeightProblems:
        return WeightProblems(
            self.checked + other.checked, self.nonfinite + other.nonfinite, self.overflow + other.overflow,
            self.overflow_dtype or other.overflow_dtype,
        )

    def describe(self) -> str:
        """One sentence for messages: how many tensors, and the first few names."""
        parts = []
        if self.nonfinite:
            parts.append(msg("finite_weights.nonfinite", "{count} of {checked} tensors hold NaN or infinite values ({names})",
                             count=len(self.nonfinite), checked=self.checked, names=_first(self.nonfinite)))
        if self.overflow:
            limit = torch.finfo(self.overflow_dtype).max if self.overflow_dtype else float("inf")
            parts.append(msg("finite_weights.overflow", "{count} of {checked} tensors hold values beyond {limit}, which "
                             "become infinite when saved as {precision} ({names})", count=len(self.overflow),
                             checked=self.checked, limit=f"{limit:g}", precision=_dtype_name(self.overflow_dtype),
                             names=_first(self.overflow)))
        return "; ".join(parts)


def _first(names: list[str], count: int = 3) -> str:
    shown = ", ".join(names[:count])
    if len(names) <= count:
        return shown
    return msg("finite_weights.and_more", "{names} and {count} more", names=shown, count=len(names) - count)


def _dtype_name(dtype: torch.dtype | None) -> str:
    return {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "float"}.get(dtype, str(dtype))


def _narrows(source: torch.dtype, target: torch.dtype | None) -> bool:
    return target is not None and target.is_floating_point and torch.finfo(target).max < torch.finfo(source).max


def check_weights(tensors: Mapping[str, torch.Tensor], save_dtype: torch.dtype | None = None) -> WeightProblems:
    """Which floating tensors are not finite, or would not be once cast to `save_dtype` (None: kept as they are)."""
    names: list[str] = []
    flags: list[torch.Tensor] = []  # per tensor: 0 fine, 1 non-finite, 2 overflows the save precision
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        data = tensor.detach()
        try:
            low, high = torch.aminmax(data)
        except RuntimeError:  # dtypes aminmax does not implement (float8): compare in float32
            low, high = torch.aminmax(data.float())
        extreme = torch.maximum(low.abs(), high.abs()).float()
        flag = (~torch.isfinite(extreme)).to(torch.int8)
        if _narrows(data.dtype, save_dtype):
            flag = torch.where(flag == 0, (extreme > torch.finfo(save_dtype).max).to(torch.int8) * 2, flag)
        names.append(name)
        flags.append(flag)
    problems = WeightProblems(checked=len(names))
    if not names:
        return problems
    device = flags[0].device  # weights normally share one device; a stray one is copied over
    values = torch.stack([flag.to(device) for flag in flags]).tolist()  # the one host sync
    for name, value in zip(names, values, strict=True):
        if value == 1:
            problems.nonfinite.append(name)
        elif value == 2:
            problems.overflow.append(name)
    if problems.overflow:
        problems.overflow_dtype = save_dtype
    return problems


def ensure_finite(tensors: Mapping[str, torch.Tensor], where: str, save_dtype: torch.dtype | None = None) -> None:
    """Raise NonFiniteWeightsError naming `where` (the file) when `check_weights` finds a problem."""
    problems = check_weights(tensors, save_dtype)
    if problems:
        raise NonFiniteWeightsError(msg("finite_weights.not_written", "{path} was not written: {problems}", path=where,
                                        problems=problems.describe()))
