"""LoRA-style training: the base model frozen, a network (ours, LyCORIS or any sd-scripts-style
module) hooked into it and trained.

The trainer loop talks to a training method through a handful of calls (backend/training/method.py:
trainable parameter groups, which text encoders need gradients, saving); full fine-tuning
(finetune_method.py) is the second method.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from backend.atomic import atomic_path
from backend.families.loaded import family
from backend.finite_weights import WeightProblems, check_weights
from backend.models.components import Components
from backend.networks.args import parse_network_args
from backend.networks.loader import create_network, create_network_from_weights, load_network_module
from backend.training.distributed import check_in_sync
from backend.training.method_options import NetworkConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")


def unet_file_names(components: Components):
    """How the family's network files name the U-Net's layers (SDXL: original SGM paths; None: diffusers')."""
    return family(components.family).network_module_names(components.unet)


class NetworkTraining:
    lora = True  # saved files are networks
    ema = None  # no averaged weights

    def __init__(self, config: NetworkConfig, components: Components, plugin_args: argparse.Namespace) -> None:
        """`plugin_args`: the whole namespace, handed unread to the module's optional `prepare_network(args)`
        (sd-scripts' plug-in interface: a module may read any option)."""
        self.config = config
        self.components = components
        self.module = load_network_module(config.network_module)
        self.network_args = parse_network_args(config.network_args)
        self.train_unet = not config.network_train_text_encoder_only
        self.train_text_encoder = not config.network_train_unet_only
        unet, text_encoders, vae = components.unet, components.text_encoders, components.vae
        te_arg: Any = text_encoders if len(text_encoders) > 1 else text_encoders[0]
        names = unet_file_names(components)

        if config.dim_from_weights:
            if not config.network_weights:
                raise ValueError("--dim_from_weights needs --network_weights (the file to take dims from)")
            self.network, _ = create_network_from_weights(
                self.module, 1.0, config.network_weights, vae, te_arg, unet,
                network_args=self.network_args, unet_module_name=names,
            )
        else:
            self.network = create_network(
                self.module, 1.0, config.network_dim, config.network_alpha, vae, te_arg, unet,
                neuron_dropout=config.network_dropout, network_args=self.network_args, unet_module_name=names,
            )
        if self.network is None:
            raise ValueError(f"{config.network_module}.create_network returned no network")
        if hasattr(self.network, "prepare_network"):
            self.network.prepare_network(plugin_args)
        self.network.apply_to(te_arg, unet, self.train_text_encoder, self.train_unet)
        if config.network_weights and not config.dim_from_weights:
            info = self.network.load_weights(config.network_weights)
            logger.info("loaded network weights from %s: %s", config.network_weights, info)
        elif config.network_weights:
            self.network.load_weights(config.network_weights)

        for module in (unet, vae, *text_encoders):
            module.requires_grad_(False)
        if config.gradient_checkpointing:
            self.network.enable_gradient_checkpointing()
        self.network.prepare_grad_etc(te_arg, unet)

    @property
    def text_encoder_arg(self) -> Any:
        encoders = self.components.text_encoders
        return encoders if len(encoders) > 1 else encoders[0]

    def param_groups(self) -> tuple[list[dict[str, Any]], list[str]]:
        config = self.config
        text_encoder_lr = config.text_encoder_lr
        if isinstance(text_encoder_lr, list):
            text_encoder_lr = text_encoder_lr[0] if len(text_encoder_lr) == 1 else (text_encoder_lr or None)
        try:
            result = self.network.prepare_optimizer_params(text_encoder_lr, config.unet_lr, config.learning_rate)
        except TypeError:  # older sd-scripts-style modules take (te_lr, unet_lr)
            result = self.network.prepare_optimizer_params(text_encoder_lr, config.unet_lr)
        if isinstance(result, tuple):
            groups, descriptions = result
        else:
            groups, descriptions = result, [f"group{i}" for i in range(len(result))]
        if not groups:
            raise ValueError("the network has no trainable parameters (check --network_train_*_only)")
        return list(groups), list(descriptions)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.network.parameters() if p.requires_grad]

    def on_epoch_start(self) -> None:
        self.network.on_epoch_start(self.text_encoder_arg, self.components.unet)

    def on_step_start(self, step: int) -> None:
        """sd-scripts' optional per-batch hook (DyLoRA draws its rank block here)."""
        if hasattr(self.network, "on_step_start"):
            self.network.on_step_start(self.text_encoder_arg, self.components.unet)

    def after_optimizer_step(self, device: torch.device) -> dict[str, float]:
        """--scale_weight_norms: scale down modules whose weight delta is too large."""
        max_norm_given = self.config.scale_weight_norms
        if not max_norm_given:
            return {}
        if not hasattr(self.network, "apply_max_norm_regularization"):
            return {}
        scaled, mean_norm, max_norm = self.network.apply_max_norm_regularization(max_norm_given, device)
        return {"keys_scaled": float(scaled), "average_key_norm": float(mean_norm), "max_key_norm": float(max_norm)}

    def state_objects(self) -> list[Any]:
        """What accelerate's save_state/load_state must carry besides optimizer and scheduler."""
        return [self.network]

    @property
    def trained_module(self) -> torch.nn.Module:
        return self.network

    def forward(self, call: Callable[[], T]) -> T:
        return call()  # the network hooks into the U-Net and text encoders: their forward is the forward

    def sampling_modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.network,)

    def prompt_text(self, text: str) -> str:
        return text

    def file_metadata(self, metadata: dict[str, str]) -> dict[str, str]:
        return metadata

    def before_save(self, accelerator: Any) -> None:
        check_in_sync(accelerator, self.network)  # the file holds what every process holds

    def written_paths(self, path: Path) -> list[Path]:
        return [path]

    def weight_problems(self, dtype: torch.dtype | None) -> WeightProblems:
        """Non-finite weights in what a save writes (the network's state, cast to `dtype`)."""
        return check_weights(self.network.state_dict(), dtype)

    def saved_bytes(self, dtype: torch.dtype | None) -> int:
        """The size of one saved network file, for the free-space check."""
        return sum(t.numel() * (dtype or t.dtype).itemsize for t in self.network.state_dict().values()
                   if isinstance(t, torch.Tensor))

    def save(self, path: Path, dtype: torch.dtype | None, metadata: dict[str, str] | None) -> Path:
        """Write the network file under a temporary name, then rename: never a half-written file.

        The temporary name keeps the suffix: network modules choose the format by it."""
        with atomic_path(path, keep_suffix=True) as temp:
            self.network.save_weights(str(temp), dtype, metadata if path.suffix == ".safetensors" else None)
        return path
