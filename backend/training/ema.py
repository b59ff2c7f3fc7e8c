"""An exponential moving average (EMA) of trained weights, updated after every optimizer step.

    ema = d * ema + (1 - d) * weights,   d = min(decay, (1 + n) / (10 + n))

where n counts the updates done before this one. The warm-up term (as in OneTrainer and diffusers'
EMAModel) keeps a short run's EMA from staying almost equal to the base weights with a decay such
as 0.999. The averages are float32 whatever the training precision (a bf16 average of small
updates would round them away), on the weights' device.

It is a checkpointable object (`state_dict` / `load_state_dict`), registered with accelerate, so
a saved training state carries the averages and the update count and `--resume` continues the
average exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from backend.messages import msg

WARMUP_OFFSET = 10


def ema_decay_at(decay: float, updates_done: int) -> float:
    """The decay used for the update after `updates_done` earlier ones."""
    return min(decay, (1 + updates_done) / (WARMUP_OFFSET + updates_done))


class EmaWeights:
    def __init__(self, parameters: Mapping[str, torch.nn.Parameter], decay: float) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"--ema_decay must be between 0 and 1, got {decay}")
        self.parameters = dict(parameters)
        self.decay = decay
        self.updates = 0
        self.averages = {name: p.detach().float().clone() for name, p in self.parameters.items()}

    @torch.no_grad()
    def update(self) -> None:
        decay = ema_decay_at(self.decay, self.updates)
        for name, parameter in self.parameters.items():
            average = self.averages[name]
            average.mul_(decay).add_(parameter.detach().to(average.device, torch.float32), alpha=1.0 - decay)
        self.updates += 1

    def averaged(self, prefix: str) -> dict[str, torch.Tensor]:
        """The averages of the parameters named `<prefix>.<key>`, keyed `<key>` (a module's state-dict keys)."""
        start = prefix + "."
        return {name[len(start):]: value for name, value in self.averages.items() if name.startswith(start)}

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "averages": dict(self.averages)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        averages = state["averages"]
        if set(averages) != set(self.averages):
            missing = sorted(set(self.averages) - set(averages))[:3]
            extra = sorted(set(averages) - set(self.averages))[:3]
            raise ValueError(msg(
                "run.resume.ema_mismatch", "the saved EMA does not match the trained weights of this run (missing e.g. "
                "{missing}, unexpected e.g. {extra}); resume with the same --train_text_encoder and learning rates as "
                "the run that saved the state", missing=missing, extra=extra,
            ))
        for name, value in averages.items():
            self.averages[name].copy_(value)
        self.updates = int(state["updates"])
