"""A room's typed slice of the run's options (issue 16: rooms take what they read).

A slice is a frozen dataclass whose fields are named as the options they hold; `from_args` copies
those options out of the parsed namespace. A room that takes a slice shows its inputs in its
signature, and a test can build one without a whole command line. `NoiseConfig` and `LossConfig`
(backend/objectives) read their fields the same way on their own; slices that derive a value
(`ValidationConfig`, `TextCacheConfig`) write their own `from_args`.
`tests/training/test_option_slices.py` checks that every field names an option, and lists the few
callables that still take the whole namespace, with the reason.

Torch-free: preflight builds slices before any model is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

S = TypeVar("S", bound="OptionSlice")


class OptionSlice:
    """Base of the slices: subclasses are `@dataclass(frozen=True)` with fields named as options."""

    @classmethod
    def from_args(cls: type[S], args: argparse.Namespace | Any) -> S:
        """A field with a default is an option only some commands have (train_video's); the others must exist."""
        return cls(**{field.name: getattr(args, field.name) if field.default is dataclasses.MISSING
                      else getattr(args, field.name, field.default)
                      for field in dataclasses.fields(cls)})  # type: ignore[arg-type]
