"""A learning rate typical of the other kind of run: a LoRA at a full fine-tune's rate barely moves
(sd-scripts' default 2e-6 is a fine-tuning value), and a full fine-tune at a LoRA's rate damages the
model within a few hundred steps. Optimizers that set their own step size are left alone.

Reads the parsed options only; preflight adds it to its warnings (and so to the GUI's preflight report).
"""

from __future__ import annotations

from backend.messages import msg
from backend.options.schema import FINETUNE_COMMANDS, LECO_COMMANDS, LORA_COMMANDS
from backend.training.optimizers import OptimizerConfig, resolve_optimizer_name

# Below this a LoRA learns next to nothing (LoRA runs use 1e-4 to 1e-3); above that a full fine-tune
# is at a LoRA's rate (full fine-tunes use 1e-6 to 1e-5).
LORA_LOWEST_TYPICAL = 1e-5
FINETUNE_HIGHEST_TYPICAL = 5e-5


def _adaptive(optimizer: OptimizerConfig) -> bool:
    """Optimizers whose learning rate is a multiplier (~1.0) or ignored (Adafactor's relative_step)."""
    try:
        name = resolve_optimizer_name(optimizer)
    except ValueError:
        return True  # reported elsewhere; no second opinion on a rate for an unknown optimizer
    if name.startswith("DAdapt") or name == "Prodigy":
        return True
    arguments = " ".join(optimizer.optimizer_args or []).replace(" ", "").lower()
    return name == "Adafactor" and "relative_step=true" in arguments


def learning_rate_warning(optimizer: OptimizerConfig, unet_lr: float | None, command: str) -> str | None:
    """A warning when the main learning rate (--learning_rate; a LoRA's --unet_lr when given) suits the
    other kind of run, else None."""
    if _adaptive(optimizer):
        return None
    if command in LORA_COMMANDS or command in LECO_COMMANDS:
        rate, flag = (unet_lr, "--unet_lr") if unet_lr is not None else (optimizer.learning_rate, "--learning_rate")
        if 0 < rate < LORA_LOWEST_TYPICAL:
            return msg(
                "preflight.lr.too_low_for_lora", "{flag} {rate} is a full fine-tuning rate; a LoRA at it barely "
                "changes (LoRA runs usually use 1e-4 to 1e-3, or about 1.0 with Prodigy/D-Adaptation). Raise {flag} "
                "unless this is intended", flag=flag, rate=f"{rate:g}",
            )
        return None
    if command not in FINETUNE_COMMANDS:  # Textual Inversion: its vectors take rates of either kind
        return None
    rate = optimizer.learning_rate
    if rate > FINETUNE_HIGHEST_TYPICAL:
        return msg(
            "preflight.lr.too_high_for_finetune", "--learning_rate {rate} is a LoRA rate; a full fine-tune at it "
            "overwrites the model's knowledge within a few hundred steps (fine-tunes usually use 1e-6 to 1e-5). Lower "
            "--learning_rate unless this is intended", rate=f"{rate:g}",
        )
    return None
