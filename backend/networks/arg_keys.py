"""Every `--network_args` key this project knows, declared once: its value type, which network
modules read it, and whether it shapes the network.

Our modules take their lists of known keys from here (`networks.lora`: `lora.KNOWN_KEYS`,
`networks.dylora`: `dylora.KNOWN_KEYS`; a key outside the list is an error naming the nearest one),
and the LoRA tab builds its network fields from the same entries (gui/training/network_types.py), so the
GUI cannot offer a key a module does not read, or read its value as another type. LyCORIS keys are
listed for the GUI's fields only: which keys `lycoris.kohya` reads is found in its source
(backend/networks/args.py). Groups of keys that code treats alike are named here too
(`PER_BLOCK_KEYS`, `LORAPLUS_KEYS`, `CHANGEABLE_ON_RESUME`: the network loader, the resume check and
the kohya_ss import read them).

Torch-free: the GUI imports this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LORA = "networks.lora"
DYLORA = "networks.dylora"
LYCORIS = "lycoris.kohya"

# The value: a number or switch ("int", "float", "bool"), one of `choices`, comma-separated values
# per U-Net block ("blocks"), or text (block lr weights also take preset names such as "sine").
KeyKind = Literal["int", "float", "bool", "choice", "blocks", "text"]
# "shape": what the network holds (ranks, alphas, which layers); a network made from a weights file
# takes these from the file. "training": how it trains (dropout, learning rates).
Role = Literal["shape", "training"]

LYCORIS_PRESETS = (
    "full", "full-lin", "attn-mlp", "attn-only", "unet-only", "unet-transformer-only", "unet-convblock-only",
)  # fmt: skip


@dataclass(frozen=True)
class NetworkArgKey:
    name: str
    kind: KeyKind
    modules: tuple[str, ...]  # the network modules that read it
    role: Role = "shape"
    choices: tuple[str, ...] = ()


# In the LoRA tab's field order (gui/training/network_types.py shows the keys a network type uses, in this order).
NETWORK_ARG_KEYS: dict[str, NetworkArgKey] = {
    key.name: key
    for key in (
        NetworkArgKey("preset", "choice", (LYCORIS,), choices=LYCORIS_PRESETS),
        NetworkArgKey("conv_dim", "int", (LORA, DYLORA, LYCORIS)),
        NetworkArgKey("conv_alpha", "float", (LORA, DYLORA, LYCORIS)),  # DyLoRA: taken, ignored (sd-scripts)
        NetworkArgKey("unit", "int", (DYLORA,)),
        NetworkArgKey("block_size", "int", (LYCORIS,)),
        NetworkArgKey("factor", "int", (LYCORIS,)),
        NetworkArgKey("rank_dropout", "float", (LORA, LYCORIS), "training"),
        NetworkArgKey("module_dropout", "float", (LORA, LYCORIS), "training"),
        NetworkArgKey("constraint", "float", (LYCORIS,)),
        NetworkArgKey("use_tucker", "bool", (LYCORIS,)),
        NetworkArgKey("use_scalar", "bool", (LYCORIS,)),
        NetworkArgKey("dora_wd", "bool", (LYCORIS,)),
        NetworkArgKey("decompose_both", "bool", (LYCORIS,)),
        NetworkArgKey("full_matrix", "bool", (LYCORIS,)),
        NetworkArgKey("bypass_mode", "bool", (LYCORIS,)),
        NetworkArgKey("rescaled", "bool", (LYCORIS,)),
        NetworkArgKey("train_norm", "bool", (LYCORIS,)),
        NetworkArgKey("train_on_input", "bool", (LYCORIS,)),
        # Per-block ranks and alphas: 25 (SDXL: 23) values, sd-scripts' networks.lora only.
        NetworkArgKey("block_dims", "blocks", (LORA,)),
        NetworkArgKey("block_alphas", "blocks", (LORA,)),
        NetworkArgKey("conv_block_dims", "blocks", (LORA,)),
        NetworkArgKey("conv_block_alphas", "blocks", (LORA,)),
        # Neuron dropout, when --network_dropout is not given (DyLoRA: taken, ignored with a warning).
        NetworkArgKey("dropout", "float", (LORA, DYLORA), "training"),
        NetworkArgKey("down_lr_weight", "text", (LORA,), "training"),
        NetworkArgKey("mid_lr_weight", "text", (LORA,), "training"),
        NetworkArgKey("up_lr_weight", "text", (LORA,), "training"),
        NetworkArgKey("block_lr_zero_threshold", "float", (LORA,), "training"),
        NetworkArgKey("loraplus_lr_ratio", "float", (LORA, DYLORA), "training"),
        NetworkArgKey("loraplus_unet_lr_ratio", "float", (LORA, DYLORA), "training"),
        NetworkArgKey("loraplus_text_encoder_lr_ratio", "float", (LORA, DYLORA), "training"),
    )
}


# Named groups of the keys above, for the code that treats them alike.
# sd-scripts' networks.lora's per-U-Net-block settings (learning-rate weights, ranks, alphas), in the order kohya_ss
# passes them. LyCORIS has no such keys: it sets blocks through presets (backend/networks/loader.py warns).
PER_BLOCK_KEYS = (
    "down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold",
    "block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas",
)  # fmt: skip
# LoRA+: the up weights' learning rate is the base one times the ratio.
LORAPLUS_KEYS = tuple(name for name in NETWORK_ARG_KEYS if name.startswith("loraplus_"))
# The "training" keys a resumed run may change (backend/training/resume_check.py): the dropouts. Not the
# block learning-rate weights or LoRA+ ratios: they lay out the optimizer's parameter groups (one per block,
# a group for the up weights), which the saved optimizer state must match, and a block weight of 0 leaves the
# block without LoRA.
CHANGEABLE_ON_RESUME = frozenset(
    name for name, key in NETWORK_ARG_KEYS.items()
    if key.role == "training" and name not in PER_BLOCK_KEYS and name not in LORAPLUS_KEYS
)  # fmt: skip


def keys_read_by(module: str, role: Role | None = None) -> tuple[str, ...]:
    """The keys `module` reads (of `role`, when given), in declaration order."""
    return tuple(
        key.name for key in NETWORK_ARG_KEYS.values() if module in key.modules and role in (None, key.role)
    )
