"""`--network_module NAME` -> a module, and creating its network the way sd-scripts' trainer does.

Names: `networks.lora`, `networks.lora_flux`, `networks.lora_sd3` and `networks.dylora` (the sd-scripts names, so old configs work) are ours;
`lycoris.kohya` comes from the lycoris-lora package; any other dotted name is imported as is and
must provide `create_network` (and `create_network_from_weights` for --dim_from_weights and
--base_weights).

`create_network` / `create_network_from_weights` here call a module's factory with sd-scripts'
arguments, plus:
- ours also get `unet_module_name` (SDXL key names);
- other modules get `dropout` = --network_dropout unless network_args set it (sd-scripts does this
  for LyCORIS, whose create_network has no neuron_dropout), their network_args are checked against
  the keys their `create_network` reads (warnings, never silently dropped), and they are given
  views of the models laid out as sd-scripts' own models (bridge.py), so they pick the layers and
  names they pick there.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import torch
from torch import nn

from backend.families.loaded import family_of_modules
from backend.messages import msg
from backend.networks.arg_keys import PER_BLOCK_KEYS
from backend.networks.args import keys_read_by
from backend.networks.bridge import model_views
from backend.networks.naming import ModuleNameMap, as_list
from backend.networks.weights_io import weights_from

logger = logging.getLogger(__name__)

OUR_MODULES = {
    "networks.lora": "backend.networks.lora",
    # sd-scripts' FLUX.1 LoRA module: ours serves every family (it asks the model's family for its names).
    "networks.lora_flux": "backend.networks.lora",
    "networks.lora_sd3": "backend.networks.lora",  # sd-scripts' SD 3.5 LoRA module, likewise
    "networks.dylora": "backend.networks.dylora",
    # The video trainer's PEFT-layout LoRA (train_video --training_type lora); not an sd-scripts name.
    "video.peft_lora": "backend.video.network",
}
LYCORIS_MODULE = "lycoris.kohya"


class NetworkModuleError(ImportError):
    """A --network_module that cannot be used; the message says what to install or provide."""


def load_network_module(name: str) -> ModuleType:
    name = name.strip()
    target = OUR_MODULES.get(name, name)
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as err:
        if name == LYCORIS_MODULE or (err.name or "").split(".")[0] == "lycoris":
            raise NetworkModuleError(msg(
                "network.module.needs_lycoris",
                "--network_module {name} needs the LyCORIS package: pip install lycoris-lora (into this app's venv)",
                name=name,
            )) from err  # fmt: skip
        if name.startswith("networks."):
            raise NetworkModuleError(msg(
                "network.module.not_included",
                "--network_module {name} is an sd-scripts module this trainer does not include; use one of {ours}, "
                "or put a module providing create_network on PYTHONPATH",
                name=name, ours=", ".join([*OUR_MODULES, LYCORIS_MODULE]),
            )) from err  # fmt: skip
        raise NetworkModuleError(msg(
            "network.module.import_failed", "--network_module {name}: cannot import {missing} ({error})",
            name=name, missing=repr(err.name), error=err,
        )) from err  # fmt: skip
    missing = [fn for fn in ("create_network", "create_network_from_weights") if not callable(getattr(module, fn, None))]
    if "create_network" in missing:
        raise NetworkModuleError(msg(
            "network.module.no_create_network",
            "--network_module {name} ({file}) has no create_network(multiplier, network_dim, network_alpha, vae, "
            "text_encoder, unet, **kwargs); it is not a network module",
            name=name, file=getattr(module, "__file__", target),
        ))  # fmt: skip
    if missing:
        logger.warning(msg(
            "network.module.no_create_network_from_weights",
            "{name} has no create_network_from_weights: --dim_from_weights and --base_weights will fail",
            name=name,
        ))  # fmt: skip
    if module.__name__ == LYCORIS_MODULE:
        _dedupe_lycoris_presets()
    return module


def _dedupe_lycoris_presets() -> None:
    """lycoris-lora 4.1.x presets `full`, `full-lin` and `unet-only` target the `TimestepEmbedding`
    class and, by name, its own `time_embedding.linear_1/2`; on SD 1.x/2.x U-Nets (sd-scripts' as
    well as the view of ours, bridge.py) that wraps the same layers twice and create_network stops with
    "duplicated lora name". Dropping the names the class already covers targets the same layers once.
    (sd-scripts' SDXL U-Net has no TimestepEmbedding: there neither rule matches.)"""
    from lycoris.config import PRESET
    from lycoris.kohya import LycorisNetworkKohya

    def without_covered(modules: list[str], names: list[str]) -> list[str]:
        if "TimestepEmbedding" not in modules:
            return names
        return [n for n in names if not n.startswith("time_embedding.")]

    for preset in PRESET.values():
        preset["unet_target_name"] = without_covered(
            preset.get("unet_target_module", []), preset.get("unet_target_name", [])
        )
    # The class defaults are the `full` preset too; create_network_from_weights builds with them.
    network_class = LycorisNetworkKohya
    network_class.UNET_TARGET_REPLACE_NAME = without_covered(
        network_class.UNET_TARGET_REPLACE_MODULE, network_class.UNET_TARGET_REPLACE_NAME
    )


def is_ours(module: ModuleType) -> bool:
    return module.__name__ in OUR_MODULES.values()


def unread_network_args(module: ModuleType, args: Mapping[str, Any]) -> list[str]:
    """Warnings for network_args keys a foreign module's create_network does not read (ours raise
    on unknown keys themselves). Empty when nothing can be known about the module."""
    if is_ours(module):
        return []
    known = keys_read_by(module.create_network)
    if known is None:
        return []
    if module.__name__ == LYCORIS_MODULE:
        from lycoris.wrapper import deprecated_arg_dict

        known |= set(deprecated_arg_dict)
    warnings = []
    for key in args:
        if key in known:
            continue
        if module.__name__ == LYCORIS_MODULE and key in PER_BLOCK_KEYS:
            warnings.append(msg(
                "network.args.unread_lycoris_block",
                "network_args {key} is not read by {module}; it has no effect: per-block settings go through LyCORIS "
                "presets (preset=<file.toml>, see LyCORIS docs/Preset.md)",
                key=repr(key), module=module.__name__,
            ))  # fmt: skip
        else:
            warnings.append(msg(
                "network.args.unread", "network_args {key} is not read by {module}; it has no effect",
                key=repr(key), module=module.__name__,
            ))  # fmt: skip
    return warnings


def refuse_foreign_module(module: ModuleType, text_encoder: Any, unet: nn.Module | None,
                          network_args: Mapping[str, Any] | None = None) -> Any:
    """A family with a network layout of its own may not fit plug-in modules (they see only our views) with
    some network_args; returns the family's view of `unet` for them (None: the generic view)."""
    if unet is None:
        return None
    layout = family_of_modules(unet, len(as_list(text_encoder))).network_layout
    if layout is None:
        return None
    why = layout.foreign_modules_reason(network_args or {})
    if why:
        raise NetworkModuleError(msg(
            "network.module.not_for_family", "--network_module {name} cannot train {model}: {why}",
            name=module.__name__, model=layout.label, why=why,
        ))  # fmt: skip
    return layout.plugin_view(unet)


def create_network(
    module: ModuleType,
    multiplier: float,
    network_dim: int | None,
    network_alpha: float | None,
    vae: Any,
    text_encoder: nn.Module | list[nn.Module] | None,
    unet: nn.Module | None,
    neuron_dropout: float | None = None,
    network_args: Mapping[str, Any] | None = None,
    unet_module_name: ModuleNameMap | None = None,
) -> Any:
    """A new network from `module` (as `--network_module` + `--network_args` ask)."""
    args = dict(network_args or {})
    if is_ours(module):
        return module.create_network(
            multiplier, network_dim, network_alpha, vae, text_encoder, unet, neuron_dropout,
            unet_module_name=unet_module_name, **args,
        )
    family_view = refuse_foreign_module(module, text_encoder, unet, args)
    for warning in unread_network_args(module, args):
        logger.warning(warning)
    args.setdefault("dropout", neuron_dropout)
    te_view, unet_view = model_views(text_encoder, unet, unet_module_name, family_view)
    network = module.create_network(
        multiplier, network_dim, network_alpha, vae, te_view, unet_view, neuron_dropout=neuron_dropout, **args
    )
    return _without_merge(network) if family_view is not None else network


def create_network_from_weights(
    module: ModuleType,
    multiplier: float,
    file: str | os.PathLike[str] | None,
    vae: Any,
    text_encoder: nn.Module | list[nn.Module] | None,
    unet: nn.Module | None,
    weights_sd: Mapping[str, torch.Tensor] | None = None,
    for_inference: bool = False,
    network_args: Mapping[str, Any] | None = None,
    unet_module_name: ModuleNameMap | None = None,
) -> tuple[Any, dict[str, torch.Tensor]]:
    """A network shaped like a file (--dim_from_weights, --base_weights) and the file's weights,
    keyed by sd-scripts names."""
    args = dict(network_args or {})
    if is_ours(module):
        return module.create_network_from_weights(
            multiplier, file, vae, text_encoder, unet, weights_sd, for_inference,
            unet_module_name=unet_module_name, **args,
        )
    family_view = refuse_foreign_module(module, text_encoder, unet, args)
    weights = weights_from(file, weights_sd)
    te_view, unet_view = model_views(text_encoder, unet, unet_module_name, family_view)
    network, _ = module.create_network_from_weights(
        multiplier, file, vae, te_view, unet_view, weights_sd=weights, for_inference=for_inference, **args,
    )
    return (_without_merge(network) if family_view is not None else network), weights


def _without_merge(network: Any) -> Any:
    """A plug-in network over a family's layout view (fused layers made of several of ours) cannot merge into
    the model: it would write into the view's layers, which hold no weights. Refuse instead of losing it."""
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise NetworkModuleError(msg(
            "network.module.no_merge_over_view",
            "this network's layers include sd-scripts' fused layers (made of several of our model's layers), so it "
            "cannot be merged into the model while training; merge the saved file with the LoRA tools instead",
        ))  # fmt: skip

    if network is not None and hasattr(network, "merge_to"):
        network.merge_to = refuse
    return network
