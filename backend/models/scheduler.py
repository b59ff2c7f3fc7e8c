"""Inference scheduler of a model from its scheduler config (the class named in ``_class_name``)."""

from __future__ import annotations

from typing import Any

import diffusers
from diffusers import SchedulerMixin


def inference_scheduler(config: dict[str, Any]) -> SchedulerMixin:
    cls = getattr(diffusers, str(config.get("_class_name", "DDIMScheduler")), None)
    if cls is None or not issubclass(cls, SchedulerMixin):
        cls = diffusers.DDIMScheduler
    return cls.from_config(config)
