"""kohya_ss `LoRA_type` and network-shape fields -> `network_module` + `network_args`, as kohya_ss builds them.

Follows `train_model` in kohya_ss v26 `lora_gui.py`: LyCORIS types pass a fixed list of arguments
(zeros and False included), kohya's own types pass only the fields that are set, and the LoRA+
ratios are appended to every type. Differences, each reported as a warning:

- Keys sd-scripts' DyLoRA never reads (block settings, dropouts) are left out: sd-scripts ignored
  them, our `networks.dylora` would refuse them.
- kohya_ss's native "Kohya LoHa"/"Kohya LoKr" (sd-scripts `networks.loha`/`networks.lokr`, not in
  this trainer) become LyCORIS LoHa/LoKr, the same algorithms.
- Comma lists lose their spaces (kohya_ss split `network_args` on spaces, which broke them).
- kohya_ss's "Flux1" (sd-scripts networks.lora_flux) is our networks.lora, which follows sd-scripts'
  FLUX.1 layout and network_args (backend/families/flux/network.py). Block selections of "all" (sd-scripts'
  default) are left out, spaces in values too; rank_dropout/module_dropout above 0 are passed, as v26
  does (v25 did not pass them).
- The result is written as the LoRA tab writes it (`gui.training.network_types.as_the_tab_writes`): the
  type's fields in the tab's order, False flags left out (LyCORIS's default), other entries as
  kohya_ss wrote them. So `python -m gui.kohya_import` and the GUI's import give the same TOML.
  LyCORIS reads `decompose_both` as raw text, where kohya_ss's "False" meant on: that one is said.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.messages import msg
from backend.networks.arg_keys import LORAPLUS_KEYS, PER_BLOCK_KEYS
from gui.kohya_import.values import is_empty, plain
from gui.training.network_types import as_the_tab_writes

# The GUI's network selector: our modules first, then the LyCORIS algorithms under kohya_ss's names.
NETWORK_TYPES = (
    "Standard", "LoCon", "DyLoRA",
    "LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr", "LyCORIS/iA3", "LyCORIS/DyLoRA", "LyCORIS/GLoRA",
    "LyCORIS/Diag-OFT", "LyCORIS/BOFT", "LyCORIS/Native Fine-Tuning",
)  # fmt: skip

LYCORIS_MODULE = "lycoris.kohya"

# LyCORIS types: the network_args kohya_ss passes, in its order. A bare word is passed with the
# value of the kohya_ss key of that name (ARG_SOURCE names the exceptions); `name=value` is literal.
LYCORIS_ARGS = {
    "LyCORIS/LoCon": "preset conv_dim conv_alpha use_tucker rank_dropout bypass_mode dora_wd module_dropout "
    "use_scalar rank_dropout_scale algo=locon train_norm",
    "LyCORIS/LoHa": "preset conv_dim conv_alpha use_tucker rank_dropout bypass_mode dora_wd module_dropout "
    "use_scalar rank_dropout_scale algo=loha train_norm",
    "LyCORIS/LoKr": "preset conv_dim conv_alpha use_tucker rank_dropout bypass_mode dora_wd module_dropout "
    "factor use_cp use_scalar decompose_both rank_dropout_scale algo=lokr train_norm",
    "LyCORIS/iA3": "preset conv_dim conv_alpha train_on_input algo=ia3",
    "LyCORIS/DyLoRA": "preset conv_dim conv_alpha use_tucker block_size rank_dropout module_dropout algo=dylora "
    "train_norm",
    "LyCORIS/GLoRA": "preset conv_dim conv_alpha use_tucker rank_dropout module_dropout rank_dropout_scale "
    "algo=glora train_norm",
    "LyCORIS/Diag-OFT": "preset conv_dim conv_alpha module_dropout use_tucker rank_dropout rank_dropout_scale "
    "constraint rescaled algo=diag-oft train_norm",
    "LyCORIS/BOFT": "preset conv_dim conv_alpha module_dropout use_tucker rank_dropout rank_dropout_scale "
    "algo=boft train_norm",
    "LyCORIS/Native Fine-Tuning": "preset rank_dropout module_dropout rank_dropout_scale algo=full train_norm",
}
ARG_SOURCE = {"preset": "LyCORIS_preset", "constraint": "constrain", "block_size": "unit"}

# kohya_ss's own types: (our network type, module, keys passed when set). Kohya LoCon always passes
# conv_dim/conv_alpha first.
KOHYA_TYPES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "Standard": ("Standard", "networks.lora", PER_BLOCK_KEYS + ("rank_dropout", "module_dropout")),
    "Kohya LoCon": ("LoCon", "networks.lora", PER_BLOCK_KEYS + ("rank_dropout", "module_dropout")),
    "Kohya DyLoRA": ("DyLoRA", "networks.dylora", ("conv_dim", "conv_alpha", "unit")),
}
ALWAYS_CONV = ("Kohya LoCon",)
# Passed by kohya_ss for Kohya DyLoRA, never read by sd-scripts' networks.dylora.
DYLORA_IGNORED = PER_BLOCK_KEYS + ("rank_dropout", "module_dropout")

# kohya_ss's native LoHa/LoKr -> the LyCORIS algorithm (see the module doc).
NATIVE_TO_LYCORIS = {"Kohya LoHa": "LyCORIS/LoHa", "Kohya LoKr": "LyCORIS/LoKr"}
NATIVE_ARGS = ("conv_dim", "conv_alpha", "use_tucker", "factor", "rank_dropout", "module_dropout")

LEGACY_TYPES = {"LoCon": "LyCORIS/LoCon"}  # kohya_ss renamed it in 2023 (update_my_data)

# kohya_ss's "Flux1" type: sd-scripts' networks.lora_flux, which our networks.lora follows on FLUX.1
# (backend/families/flux/network.py reads the same network_args). kohya_ss passes these fields when set,
# in this order; a text field's "0" is set (a rank of 0 trains none of those layers).
FLUX_TYPE = "Flux1"
FLUX_FIELDS = (
    "img_attn_dim", "img_mlp_dim", "img_mod_dim", "single_dim", "txt_attn_dim", "txt_mlp_dim", "txt_mod_dim",
    "single_mod_dim", "in_dims", "train_double_block_indices", "train_single_block_indices",
)  # fmt: skip
FLUX_FLAGS = ("split_qkv", "train_t5xxl")  # passed as key=True when on
FLUX_DROPOUTS = ("rank_dropout", "module_dropout")  # passed when above 0
FLUX_ALL_BLOCKS = "all"  # sd-scripts' default block selection: left out (the same network)

# Types this trainer cannot train: the model family each trains (None: a network of its own).
UNSUPPORTED_TYPES: dict[str, str | None] = {
    "LoRA-FA": None,
    "Flux1 OFT": None,
    "HunyuanImage-2.1": "HunyuanImage-2.1",
    "Anima": "Anima",
    "Lumina": "Lumina Image 2.0",
}

# Every network-shape key, with its kohya_ss form default: what kohya_ss uses when an older config
# lacks the key, and what an unused key may hold without being reported.
SHAPE_DEFAULTS: dict[str, Any] = {
    "LyCORIS_preset": "full", "conv_dim": 1, "conv_alpha": 1, "factor": -1, "unit": 1, "use_tucker": False,
    "use_cp": False, "use_scalar": False, "rank_dropout_scale": False, "constrain": 0.0, "rescaled": False,
    "train_norm": False, "decompose_both": False, "train_on_input": True, "bypass_mode": False, "dora_wd": False,
    "rank_dropout": 0, "module_dropout": 0, **dict.fromkeys(PER_BLOCK_KEYS, ""), **dict.fromkeys(LORAPLUS_KEYS, 0),
}  # fmt: skip


class UnsupportedNetwork(ValueError):
    """A LoRA_type this trainer cannot train; the message says which and why."""


@dataclass
class NetworkPlan:
    network_type: str  # one of NETWORK_TYPES
    module: str
    args: list[str]
    used: set[str] = field(default_factory=set)  # kohya_ss keys that went into `args`
    warnings: list[str] = field(default_factory=list)


def network_plan(data: Mapping[str, Any], network_dim: Any) -> NetworkPlan:
    """The network kohya_ss would train for `data` (a config after legacy migration)."""
    lora_type = LEGACY_TYPES.get(data.get("LoRA_type") or "Standard", data.get("LoRA_type") or "Standard")
    if lora_type in UNSUPPORTED_TYPES:
        family = UNSUPPORTED_TYPES[lora_type]
        if lora_type == "Flux1 OFT":
            raise UnsupportedNetwork(msg(
                "gui.kohya.flux_oft",
                'LoRA type "{lora_type}" cannot be imported: OFT for FLUX.1 (sd-scripts networks.oft_flux) is not '
                'part of this trainer; use LoRA type "Flux1"',
                lora_type=lora_type,
            ))  # fmt: skip
        if family is None:
            raise UnsupportedNetwork(msg(
                "gui.kohya.lora_fa",
                'LoRA type "{lora_type}" cannot be imported: LoRA-FA (sd-scripts networks.lora_fa) is not part of '
                "this trainer; use Standard",
                lora_type=lora_type,
            ))  # fmt: skip
        raise UnsupportedNetwork(msg(
            "gui.kohya.other_family_type",
            'LoRA type "{lora_type}" cannot be imported: it trains {family}, which this trainer does not support',
            lora_type=lora_type, family=family,
        ))  # fmt: skip
    if lora_type == FLUX_TYPE:
        plan = _flux(data)
    elif lora_type in LYCORIS_ARGS:
        plan = _lycoris(data, lora_type)
    elif lora_type in NATIVE_TO_LYCORIS:
        plan = _native_loha_lokr(data, lora_type)
    elif lora_type in KOHYA_TYPES:
        plan = _kohya(data, lora_type, network_dim)
    else:
        known = ", ".join([*KOHYA_TYPES, *LYCORIS_ARGS, *NATIVE_TO_LYCORIS, FLUX_TYPE])
        raise UnsupportedNetwork(msg(
            "gui.kohya.unknown_type", 'unknown LoRA type "{lora_type}"; this trainer imports {known}',
            lora_type=lora_type, known=known,
        ))  # fmt: skip
    for key in LORAPLUS_KEYS:
        plan.used.add(key)
        if not is_empty(_value(data, key)):
            plan.args.append(f"{key}={_text(key, _value(data, key))}")
    return _as_the_tab_writes(plan)


# network_args LyCORIS passes on without reading "False" as false (lycoris/kohya.py: kwargs.get).
RAW_TRUTH_KEYS = ("decompose_both",)


def _as_the_tab_writes(plan: NetworkPlan) -> NetworkPlan:
    """`plan` with its type, module and args as the LoRA tab writes them (see the module doc)."""
    network_type, module, args = as_the_tab_writes(plan.module, plan.args, plan.network_type)
    if module == LYCORIS_MODULE:
        kept = {item.partition("=")[0] for item in args}
        for item in plan.args:
            key, _, value = item.partition("=")
            if key in RAW_TRUTH_KEYS and value == "False" and key not in kept:
                plan.warnings.append(msg(
                    "gui.kohya.raw_false_left_out",
                    '{key}=False is left out of network_args: LyCORIS reads the text "False" as on, so '
                    "kohya_ss trained with {key} on; here it is off, as the config says. Turn {key} on to "
                    "train as kohya_ss did",
                    key=key,
                ))  # fmt: skip
    return NetworkPlan(network_type, module, args, plan.used, plan.warnings)


def _value(data: Mapping[str, Any], key: str) -> Any:
    return plain(data.get(key, SHAPE_DEFAULTS.get(key)))


def _text(key: str, value: Any) -> str:
    """A value as kohya_ss's f-string writes it (True, 0.1), with whole numbers as integers (8, not
    8.0: LyCORIS reads conv_dim with int()) and comma lists without spaces."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return re.sub(r"\s+", "", text) if key in PER_BLOCK_KEYS else text


def _lycoris(data: Mapping[str, Any], lora_type: str) -> NetworkPlan:
    plan = NetworkPlan(lora_type, LYCORIS_MODULE, [])
    for word in LYCORIS_ARGS[lora_type].split():
        name, literal, value = word.partition("=")
        if not literal:
            key = ARG_SOURCE.get(name, name)
            plan.used.add(key)
            value = _text(key, _value(data, key))
        plan.args.append(f"{name}={value}")
    return plan


def _native_loha_lokr(data: Mapping[str, Any], lora_type: str) -> NetworkPlan:
    target = NATIVE_TO_LYCORIS[lora_type]
    conv = not is_empty(_value(data, "conv_dim")) and float(_value(data, "conv_dim")) > 0
    # Native LoHa/LoKr train 3x3 convs only with conv_dim; LyCORIS's preset decides it instead.
    preset = "full" if conv else "attn-mlp"
    plan = NetworkPlan(target, LYCORIS_MODULE, [f"preset={preset}"], used=set(NATIVE_ARGS))
    for key in NATIVE_ARGS:
        value = _value(data, key)
        if (key.startswith("conv_") and not conv) or (
            key == "factor" and (target != "LyCORIS/LoKr" or value == -1)
        ):
            continue
        if not is_empty(value):
            plan.args.append(f"{key}={_text(key, value)}")
    plan.args.append(f"algo={target.split('/')[1].lower()}")
    plan.warnings.append(msg(
        "gui.kohya.native_as_lycoris",
        'LoRA type "{lora_type}" (sd-scripts networks.{module}) is not part of this trainer; it is trained as '
        "{target} (lycoris.kohya, preset={preset}), the same algorithm, so the set of trained layers may differ "
        "slightly",
        lora_type=lora_type, module=target[8:].lower(), target=target, preset=preset,
    ))  # fmt: skip
    return plan


def _kohya(data: Mapping[str, Any], lora_type: str, network_dim: Any) -> NetworkPlan:
    network_type, module, keys = KOHYA_TYPES[lora_type]
    plan = NetworkPlan(network_type, module, [], used=set(keys))
    if lora_type in ALWAYS_CONV:
        plan.args += [f"conv_dim={_text('conv_dim', _value(data, 'conv_dim'))}"]
        plan.args += [f"conv_alpha={_text('conv_alpha', _value(data, 'conv_alpha'))}"]
        plan.used |= {"conv_dim", "conv_alpha"}
    for key in keys:
        if not is_empty(_value(data, key)):
            plan.args.append(f"{key}={_text(key, _value(data, key))}")
    if lora_type == "Kohya DyLoRA":
        plan.used |= set(DYLORA_IGNORED)
        ignored = [key for key in DYLORA_IGNORED if not is_empty(_value(data, key))]
        if ignored:
            plan.warnings.append(msg(
                "gui.kohya.dylora_ignored",
                "Kohya DyLoRA: {keys} left out of network_args: sd-scripts' DyLoRA never read them, so they had "
                "no effect in kohya_ss either",
                keys=", ".join(ignored),
            ))  # fmt: skip
        conv_dim = _value(data, "conv_dim")
        if not is_empty(conv_dim) and plain(network_dim) != conv_dim:
            plan.warnings.append(msg(
                "gui.kohya.dylora_conv_dim",
                "Kohya DyLoRA: conv_dim {conv_dim} differs from network_dim {network_dim}; DyLoRA needs them "
                "equal (sd-scripts stops too), so set conv_dim to network_dim or to 0 (no 3x3 convs)",
                conv_dim=conv_dim, network_dim=network_dim,
            ))  # fmt: skip
    return plan


def _flux(data: Mapping[str, Any]) -> NetworkPlan:
    """kohya_ss's Flux1 arguments: the set fields, train_blocks=single with split_mode (kohya_ss passes
    train_blocks only then), the flags that are on and the dropouts above 0."""
    plan = NetworkPlan(KOHYA_TYPES["Standard"][0], KOHYA_TYPES["Standard"][1], [])
    plan.used |= {*FLUX_FIELDS, *FLUX_FLAGS, *FLUX_DROPOUTS}
    for key in FLUX_FIELDS:
        value = data.get(key)
        text = re.sub(r"\s+", "", str(value)) if value is not None else ""
        if text and text != FLUX_ALL_BLOCKS:
            plan.args.append(f"{key}={text}")
    if _on(data.get("split_mode")):  # split_mode itself is reported (flux_steps.py)
        plan.used.add("train_blocks")
        plan.args.append("train_blocks=single")
    plan.args += [f"{key}=True" for key in FLUX_FLAGS if _on(data.get(key))]
    for key in FLUX_DROPOUTS:
        value = _value(data, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            plan.args.append(f"{key}={_text(key, value)}")
    return plan


def _on(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")
