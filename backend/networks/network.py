"""The network object our LoRA and DyLoRA modules share: the sd-scripts network methods.

See `backend/networks/__init__.py` for the interface. Differences from sd-scripts, on purpose:

- `load_weights` refuses a file none of whose keys match, names shape mismatches (and suggests
  `--dim_from_weights`), recomputes each module's scale from the loaded alpha (sd-scripts keeps the
  scale from creation time, a FIXME there), and also accepts keys named by our models' own module
  paths (diffusers-named SDXL files, transformers-5-named text encoder files).
- `prepare_optimizer_params` takes `text_encoder_lr` as a number or a list (one per text encoder,
  SDXL), and parameters whose learning rate is 0 are frozen rather than just left out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from backend.families.blocks import BlockLayout
from backend.messages import msg
from backend.networks.weights_io import StateDict, load_weights_file, save_weights_file

logger = logging.getLogger(__name__)

ParamGroup = dict[str, Any]


class NetworkWeightsError(ValueError):
    """A network file that does not fit the network being built (another family, module or rank)."""


class LoadResult(NamedTuple):
    """Which keys did not line up (torch's strict=False loading reports none)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class LoRANetwork(nn.Module):
    """Holds the modules (LoRAModule or DyLoRAModule: `lora_name`, `lora_dim`, `multiplier`,
    `scale`, an `alpha` buffer, `apply_to`, `is_up_param`, `apply_max_norm`, `merge_into_org`)."""

    def __init__(
        self,
        text_encoder_loras: Sequence[nn.Module],
        unet_loras: Sequence[nn.Module],
        text_encoder_index: Mapping[str, int],
        name_aliases: Mapping[str, str],
        multiplier: float = 1.0,
        block_layout: BlockLayout | None = None,  # the U-Net's blocks (needed with block_lr_weight)
        block_lr_weight: list[float] | None = None,
        loraplus_ratios: tuple[float | None, float | None, float | None] = (None, None, None),
    ):
        super().__init__()
        self.text_encoder_loras: list[Any] = list(text_encoder_loras)
        self.unet_loras: list[Any] = list(unet_loras)
        self.multiplier = multiplier
        self.block_layout = block_layout
        self.block_lr_weight = block_lr_weight
        self.loraplus_lr_ratio, self.loraplus_unet_lr_ratio, self.loraplus_text_encoder_lr_ratio = loraplus_ratios
        self._text_encoder_index = dict(text_encoder_index)
        self._aliases = {a: n for a, n in name_aliases.items() if a != n}
        self._frozen: list[nn.Parameter] = []
        names = [lora.lora_name for lora in self.all_loras()]
        if len(names) != len(set(names)):
            raise ValueError("duplicate LoRA module names")
        # Registered at once so that state_dict/load_weights work before apply_to (merge, dim_from_weights).
        for lora in self.all_loras():
            self.add_module(lora.lora_name, lora)

    def all_loras(self) -> list[Any]:
        return self.text_encoder_loras + self.unet_loras

    # --- set-up --------------------------------------------------------------------------------
    def apply_to(
        self,
        text_encoder: Any = None,
        unet: Any = None,
        apply_text_encoder: bool = True,
        apply_unet: bool = True,
    ) -> None:
        """Hook the modules into the models; the flags implement --network_train_*_only."""
        dropped = ([] if apply_text_encoder else self.text_encoder_loras) + ([] if apply_unet else self.unet_loras)
        for lora in dropped:
            delattr(self, lora.lora_name)
        if not apply_text_encoder:
            self.text_encoder_loras = []
        if not apply_unet:
            self.unet_loras = []
        for lora in self.all_loras():
            lora.apply_to()
        logger.info(
            "LoRA applied: %d text encoder modules, %d U-Net modules",
            len(self.text_encoder_loras), len(self.unet_loras),
        )

    def set_multiplier(self, multiplier: float) -> None:
        self.multiplier = multiplier
        for lora in self.all_loras():
            lora.multiplier = multiplier

    def enable_gradient_checkpointing(self) -> None:
        """Nothing to do: LoRA modules run inside the base model's (checkpointed) blocks."""

    def prepare_grad_etc(self, text_encoder: Any = None, unet: Any = None) -> None:
        self.requires_grad_(True)
        for param in self._frozen:
            param.requires_grad_(False)

    def on_epoch_start(self, text_encoder: Any = None, unet: Any = None) -> None:
        self.train()

    def on_step_start(self, text_encoder: Any = None, unet: Any = None) -> None:
        """Before each batch's forward pass: modules that vary per step (DyLoRA) choose now."""
        for lora in self.all_loras():
            if hasattr(lora, "choose_block"):
                lora.choose_block()

    def get_trainable_params(self) -> Iterable[nn.Parameter]:
        return self.parameters()

    # --- weights -------------------------------------------------------------------------------
    def normalize_keys(self, weights_sd: Mapping[str, torch.Tensor]) -> StateDict:
        """Rename keys named by our models' own module paths to the sd-scripts names."""
        renamed: StateDict = {}
        for key, value in weights_sd.items():
            name, dot, param = key.partition(".")
            renamed[f"{self._aliases.get(name, name)}{dot}{param}"] = value
        return renamed

    def load_weights(self, file: str | os.PathLike[str]) -> LoadResult:
        """Load a LoRA file into the existing modules (--network_weights); returns the key report."""
        weights_sd, _ = load_weights_file(file)
        return self.load_weights_sd(weights_sd, str(file))

    def load_weights_sd(self, weights_sd: Mapping[str, torch.Tensor], source: str = "weights") -> LoadResult:
        weights_sd = self.normalize_keys(weights_sd)
        own = self.state_dict()
        matched = [key for key in weights_sd if key in own]
        if not matched:
            raise NetworkWeightsError(msg(
                "network.weights.no_keys_match",
                "{source}: none of its {count} keys belong to this network (another model family, or another network "
                "module?)",
                source=source, count=len(weights_sd),
            ))  # fmt: skip
        for key in matched:
            if weights_sd[key].shape != own[key].shape:
                raise NetworkWeightsError(msg(
                    "network.weights.shape_mismatch",
                    "{source}: {key} has shape {file_shape} but the network has {shape}; use --dim_from_weights to "
                    "take ranks from the file",
                    source=source, key=key, file_shape=tuple(weights_sd[key].shape), shape=tuple(own[key].shape),
                ))  # fmt: skip
        self.load_state_dict(weights_sd, strict=False)
        for lora in self.all_loras():
            lora.scale = float(lora.alpha) / lora.lora_dim
        result = LoadResult(sorted(set(own) - set(weights_sd)), sorted(set(weights_sd) - set(own)))
        if result.unexpected_keys:
            logger.warning(msg(
                "network.weights.unused_keys", "{source}: {count} keys not used by this network, e.g. {example}",
                source=source, count=len(result.unexpected_keys), example=result.unexpected_keys[0],
            ))  # fmt: skip
        if result.missing_keys:
            logger.warning(msg(
                "network.weights.missing_keys",
                "{source}: {count} network keys not in the file (kept as initialized), e.g. {example}",
                source=source, count=len(result.missing_keys), example=result.missing_keys[0],
            ))  # fmt: skip
        return result

    def save_weights(self, file: str | os.PathLike[str], dtype: torch.dtype | None, metadata: Mapping[str, str] | None) -> None:
        save_weights_file(file, self.state_dict(), dtype, metadata)

    def is_mergeable(self) -> bool:
        return True

    def merge_to(
        self, text_encoder: Any, unet: Any, weights_sd: Mapping[str, torch.Tensor],
        dtype: torch.dtype | None, device: torch.device | str | None,
    ) -> None:
        """Add the weights' deltas into the base models' weights (--base_weights); no hooks stay."""
        self.load_weights_sd(weights_sd)
        present = {key.partition(".")[0] for key in self.normalize_keys(weights_sd)}
        merged = [lora for lora in self.all_loras() if lora.lora_name in present]
        for lora in merged:
            lora.merge_into_org(dtype, device)
        logger.info("merged %d LoRA modules into the model", len(merged))

    @torch.no_grad()
    def apply_max_norm_regularization(self, max_norm_value: float, device: Any = None) -> tuple[int, float, float]:
        """--scale_weight_norms: scale up/down so each module's delta norm is <= max_norm_value.

        Returns (modules scaled, mean norm, max norm) after scaling, as sd-scripts."""
        results = [lora.apply_max_norm(max_norm_value) for lora in self.all_loras()]
        if not results:
            return 0, 0.0, 0.0
        norms = [norm for _, norm in results]
        return sum(scaled for scaled, _ in results), sum(norms) / len(norms), max(norms)

    # --- optimizer -----------------------------------------------------------------------------
    def prepare_optimizer_params(
        self,
        text_encoder_lr: float | Sequence[float] | None,
        unet_lr: float | None,
        default_lr: float | None = None,
    ) -> tuple[list[ParamGroup], list[str]]:
        """Param groups and a description per group (for the LR log): text encoder(s), then the
        U-Net (per block with block LR weights); LoRA+ puts up-weights in a `plus` group."""
        self.requires_grad_(True)
        self._frozen = []
        groups: list[ParamGroup] = []
        descriptions: list[str] = []

        def add(loras: list[Any], lr: float | None, ratio: float | None, label: str) -> None:
            plain, plus = [], []
            for lora in loras:
                for name, param in lora.named_parameters():
                    (plus if ratio is not None and lora.is_up_param(name) else plain).append(param)
            for params, suffix, factor in ((plain, "", 1.0), (plus, " plus", ratio)):
                if not params:
                    continue
                if lr == 0:
                    self._frozen += params
                    continue
                group: ParamGroup = {"params": params}
                if lr is not None:
                    group["lr"] = lr * factor
                groups.append(group)
                descriptions.append(label + suffix)

        te_lrs = self._text_encoder_lrs(text_encoder_lr, default_lr)
        te_ratio = self.loraplus_text_encoder_lr_ratio or self.loraplus_lr_ratio
        by_te: dict[int, list[Any]] = {}
        for lora in self.text_encoder_loras:
            by_te.setdefault(self._text_encoder_index[lora.lora_name], []).append(lora)
        if len(set(te_lrs)) <= 1:
            add(self.text_encoder_loras, te_lrs[0] if te_lrs else default_lr, te_ratio, "textencoder")
        else:
            for index, loras in sorted(by_te.items()):
                add(loras, te_lrs[index], te_ratio, f"textencoder {index + 1}")

        base_lr = unet_lr if unet_lr is not None else default_lr
        unet_ratio = self.loraplus_unet_lr_ratio or self.loraplus_lr_ratio
        if self.block_lr_weight is None:
            add(self.unet_loras, base_lr, unet_ratio, "unet")
        else:
            by_block: dict[int, list[Any]] = {}
            for lora in self.unet_loras:
                by_block.setdefault(self.block_layout.block_index(lora.lora_name), []).append(lora)
            for index, loras in sorted(by_block.items()):
                lr = None if base_lr is None else base_lr * self.block_lr_weight[index]
                add(loras, lr, unet_ratio, f"unet_block{index}")

        for param in self._frozen:
            param.requires_grad_(False)
        return groups, descriptions

    # sd-scripts calls this variant when it exists, passing --text_encoder_lr as a list.
    prepare_optimizer_params_with_multiple_te_lrs = prepare_optimizer_params

    def _text_encoder_lrs(self, text_encoder_lr: float | Sequence[float] | None, default_lr: float | None) -> list[Any]:
        count = max(self._text_encoder_index.values(), default=-1) + 1
        if text_encoder_lr is None or (isinstance(text_encoder_lr, Sequence) and len(text_encoder_lr) == 0):
            return [default_lr] * count
        if not isinstance(text_encoder_lr, Sequence):
            return [float(text_encoder_lr)] * count
        lrs = [float(lr) for lr in text_encoder_lr]
        if len(lrs) == 1:
            return lrs * count
        if len(lrs) < count:
            raise ValueError(msg(
                "network.text_encoder_lr_count", "text_encoder_lr has {given} values for {count} text encoders",
                given=len(lrs), count=count,
            ))  # fmt: skip
        return lrs[:count]
