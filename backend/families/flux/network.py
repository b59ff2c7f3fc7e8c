"""FLUX.1 LoRA as sd-scripts' networks/lora_flux.py lays it out, over diffusers' FluxTransformer2DModel.

sd-scripts trains BFL's model and wraps every Linear inside its DoubleStreamBlock and SingleStreamBlock;
files name a layer `lora_unet_<BFL path with "." -> "_">` (`lora_unet_double_blocks_0_img_attn_qkv`),
CLIP-L `lora_te1_...`, T5-XXL `lora_te3_...` (only with train_t5xxl). BFL fuses q, k, v (and in single
blocks the MLP input) into one Linear where diffusers has one per part: those are fused targets
(backend/networks/fused.py). The table below maps each BFL layer to diffusers' modules; it follows
diffusers' convert_flux_transformer_checkpoint_to_diffusers (loaders/single_file_utils.py).

network_args (sd-scripts' names and meaning):

| key | meaning |
| --- | --- |
| train_blocks | all (default), single or double: which kind of block gets LoRA |
| split_qkv | fused layers keep a down/up pair per part (saved merged, as sd-scripts does) |
| train_t5xxl | LoRA on T5-XXL too (with the text encoder trained) |
| img_attn_dim, txt_attn_dim, img_mlp_dim, txt_mlp_dim, img_mod_dim, txt_mod_dim, single_dim, single_mod_dim | rank per kind of layer, 0 = none |
| in_dims | 5 ranks for img_in, time_in, vector_in, guidance_in, txt_in (0 = none); none by default |
| train_double_block_indices, train_single_block_indices | blocks to train: all, none, or indices and ranges (0,2,5-8) |
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from backend.messages import msg
from backend.networks.args import ArgReader, NetworkArgsError
from backend.networks.models import Models, NetworkLayout, RankChooser
from backend.networks.naming import (
    UNET_PREFIX,
    Target,
    find_targets,
    identity_name,
    lora_name,
    text_encoder_module_name,
)

logger = logging.getLogger(__name__)

# sd-scripts' LoRANetwork.TEXT_ENCODER_TARGET_REPLACE_MODULE (for both encoders) and prefixes.
TEXT_ENCODER_CLASSES = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP", "T5Attention", "T5DenseGatedActDense")
TEXT_ENCODER_PREFIXES = ("lora_te1", "lora_te3")  # CLIP-L, T5-XXL ("lora_te3": ComfyUI's name for T5)

# BFL layer inside a block -> the diffusers modules (relative to the block) that compute it, in the order
# their outputs make up the BFL layer's output. In BFL's module order (sd-scripts' named_modules order).
DOUBLE_BLOCK: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("img_mod.lin", ("norm1.linear",)),
    ("img_attn.qkv", ("attn.to_q", "attn.to_k", "attn.to_v")),
    ("img_attn.proj", ("attn.to_out.0",)),
    ("img_mlp.0", ("ff.net.0.proj",)),
    ("img_mlp.2", ("ff.net.2",)),
    ("txt_mod.lin", ("norm1_context.linear",)),
    ("txt_attn.qkv", ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")),
    ("txt_attn.proj", ("attn.to_add_out",)),
    ("txt_mlp.0", ("ff_context.net.0.proj",)),
    ("txt_mlp.2", ("ff_context.net.2",)),
)
SINGLE_BLOCK: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("linear1", ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")),
    ("linear2", ("proj_out",)),
    ("modulation.lin", ("norm.linear",)),
)
# The embedders (in_dims, in its order): BFL path -> diffusers path. guidance_in exists in dev only.
IN_LAYERS: tuple[tuple[int, str, str], ...] = (
    (0, "img_in", "x_embedder"),
    (1, "time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"),
    (1, "time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"),
    (2, "vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
    (2, "vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
    (3, "guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"),
    (3, "guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"),
    (4, "txt_in", "context_embedder"),
)
IN_DIMS_ORDER = ("img_in", "time_in", "vector_in", "guidance_in", "txt_in")

# type dims: the key, and the substrings a layer's name must all contain (sd-scripts' identifiers, first match wins).
TYPE_DIMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("img_attn_dim", ("img_attn",)),
    ("txt_attn_dim", ("txt_attn",)),
    ("img_mlp_dim", ("img_mlp",)),
    ("txt_mlp_dim", ("txt_mlp",)),
    ("img_mod_dim", ("img_mod",)),
    ("txt_mod_dim", ("txt_mod",)),
    ("single_dim", ("single_blocks", "linear")),
    ("single_mod_dim", ("modulation",)),
)
TRAIN_BLOCKS = ("all", "single", "double")
BLOCK_SELECTIONS = ("train_double_block_indices", "train_single_block_indices")

CONV_KEYS = ("conv_dim", "conv_alpha")
UNET_BLOCK_KEYS = ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas", "down_lr_weight",
                   "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold")


@dataclass(frozen=True)
class _Block:
    kind: str  # "double" or "single"
    index: int
    module: nn.Module


def _blocks(transformer: nn.Module) -> list[_Block]:
    return ([_Block("double", i, b) for i, b in enumerate(transformer.transformer_blocks)]
            + [_Block("single", i, b) for i, b in enumerate(transformer.single_transformer_blocks)])


def _target(name: str, modules: list[nn.Module], diffusers_path: str | None) -> Target:
    return Target(
        lora_name=lora_name(UNET_PREFIX, name),
        # A fused layer has no single diffusers path to alias; the others may be named by ours in a file.
        diffusers_name=lora_name(UNET_PREFIX, diffusers_path) if diffusers_path else lora_name(UNET_PREFIX, name),
        module=modules[0], kind="linear", text_encoder_index=None,
        members=tuple(modules) if len(modules) > 1 else (),
    )


def block_targets(transformer: nn.Module, kinds: tuple[str, ...]) -> list[Target]:
    """The transformer blocks' layers as sd-scripts names them, double blocks first; layers a block lacks
    are left out (Chroma's blocks have no modulation Linears: its approximator computes them)."""
    targets = []
    for block in _blocks(transformer):
        if block.kind not in kinds:
            continue
        table = DOUBLE_BLOCK if block.kind == "double" else SINGLE_BLOCK
        root = "transformer_blocks" if block.kind == "double" else "single_transformer_blocks"
        for bfl, paths in table:
            try:
                modules = [block.module.get_submodule(p) for p in paths]
            except AttributeError:
                continue
            name = f"{block.kind}_blocks.{block.index}.{bfl}"
            targets.append(_target(name, modules, f"{root}.{block.index}.{paths[0]}" if len(paths) == 1 else None))
    return targets


def in_layer_targets(transformer: nn.Module) -> list[Target]:
    """The embedders (sd-scripts' in_dims layers) the model has (schnell has no guidance_in)."""
    targets = []
    for _, bfl, path in IN_LAYERS:
        try:
            module = transformer.get_submodule(path)
        except AttributeError:
            continue
        targets.append(_target(bfl, [module], path))
    return targets


def _in_dims_index(name: str) -> int | None:
    for index, bfl, _ in IN_LAYERS:
        if name == lora_name(UNET_PREFIX, bfl):
            return index
    return None


def parse_block_selection(text: str, total: int, key: str) -> list[bool]:
    """sd-scripts' block selection: "all", "none"/"", or comma-separated indices and ranges ("0,2,5-8")."""
    text = text.strip()
    if text == "all":
        return [True] * total
    if text in ("none", ""):
        return [False] * total
    selected = [False] * total
    for part in text.split(","):
        start_text, dash, end_text = part.partition("-")
        try:
            start = int(start_text)
            end = int(end_text) if dash else start
        except ValueError:
            raise NetworkArgsError(msg(
                "network.flux.bad_block_selection",
                "network_args {key}={value}: expected all, none, or block indices and ranges such as 0,2,5-8",
                key=key, value=repr(text),
            )) from None  # fmt: skip
        if not 0 <= start <= end < total:
            raise NetworkArgsError(msg(
                "network.flux.block_out_of_range",
                "network_args {key}: {part} is not a block range of this model, which has blocks 0 to {last}",
                key=key, part=repr(part.strip()), last=total - 1,
            ))  # fmt: skip
        for i in range(start, end + 1):
            selected[i] = True
    return selected


def parse_in_dims(args: ArgReader) -> list[int] | None:
    text = args.text("in_dims")
    if text is None:
        return None
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        dims = [int(part) for part in text.split(",")]
    except ValueError:
        dims = []
    if len(dims) != len(IN_DIMS_ORDER) or any(d < 0 for d in dims):
        raise NetworkArgsError(msg(
            "network.flux.bad_in_dims",
            "network_args in_dims={value}: expected 5 ranks (0 = none) for {layers}, e.g. in_dims=[4,0,0,0,4]",
            value=repr(text), layers=", ".join(IN_DIMS_ORDER),
        ))  # fmt: skip
    return dims


class FluxNetworkLayout(NetworkLayout):
    label = "FLUX.1"
    network_module = "networks.lora_flux"
    bfl_class = "Flux"  # sd-scripts' model class (library/flux_models.py)
    # The text encoders' prefixes in the models' text-encoder order, and the index of T5 among them (sd-scripts
    # trains T5 only with train_t5xxl).
    te_prefixes: tuple[str, ...] = TEXT_ENCODER_PREFIXES
    t5_index = 1
    # sd-scripts' flux_extract_lora: the transformer blocks only (see extracted_targets).
    extracts_text_encoders = False
    shape_keys = ("train_blocks", "split_qkv", "train_t5xxl", *(key for key, _ in TYPE_DIMS), "in_dims",
                  *BLOCK_SELECTIONS)

    def refused_reason(self, key: str) -> str | None:
        if key in CONV_KEYS:
            return msg("network.flux.no_conv", "FLUX.1's transformer has no convolutions to train")
        if key in UNET_BLOCK_KEYS:
            return msg(
                "network.flux.no_unet_blocks",
                "it sets U-Net blocks, which FLUX.1 does not have; choose blocks with train_double_block_indices/"
                "train_single_block_indices and ranks per kind of layer with img_attn_dim, single_dim, ...",
            )  # fmt: skip
        return None

    def foreign_modules_reason(self, network_args: Mapping[str, Any]) -> str | None:
        from backend.networks.layout_view import plugin_args_reason

        return plugin_args_reason(self.label, network_args)

    def plugin_view(self, unet: nn.Module) -> nn.Module | None:
        """BFL's layout (plugin_view.py): LyCORIS then writes sd-scripts' names (lora_unet_double_blocks_0_...)."""
        from backend.families.flux.plugin_view import bfl_view

        return bfl_view(unet, self.bfl_class, DOUBLE_BLOCK, SINGLE_BLOCK, IN_LAYERS)

    def text_encoder_prefixes(self, count: int) -> list[str]:
        return list(self.te_prefixes[:count])

    def targets(self, models: Models, args: ArgReader | None,
                weights: Mapping[str, torch.Tensor] | None) -> tuple[list[Target], list[Target]]:
        if args is not None:
            return self._targets(models, bool(args.flag("train_t5xxl")), self._train_blocks(args), "in_dims" in args)
        assert weights is not None
        with_t5 = any(key.startswith(TEXT_ENCODER_PREFIXES[1]) for key in weights)
        return self._targets(models, with_t5, ("double", "single"), True)

    def every_target(self, models: Models) -> tuple[list[Target], list[Target]]:
        return self._targets(models, True, ("double", "single"), True)

    def _targets(self, models: Models, with_t5: bool, blocks: tuple[str, ...],
                 with_in: bool) -> tuple[list[Target], list[Target]]:
        te_targets: list[Target] = []
        prefixes = self.text_encoder_prefixes(len(models.text_encoders))
        for index, (te, prefix) in enumerate(zip(models.text_encoders, prefixes, strict=False)):
            if index >= self.t5_index and not with_t5:  # sd-scripts: T5 only with train_t5xxl
                break
            names = text_encoder_module_name(te) if "CLIP" in type(te).__name__ else identity_name
            te_targets += find_targets(te, prefix, TEXT_ENCODER_CLASSES, names, index)
        unet_targets: list[Target] = []
        if models.unet is not None:
            unet_targets = block_targets(models.unet, blocks)
            if with_in:
                unet_targets += in_layer_targets(models.unet)
        return te_targets, unet_targets

    @staticmethod
    def _train_blocks(args: ArgReader) -> tuple[str, ...]:
        choice = (args.text("train_blocks") or "all").strip()
        if choice not in TRAIN_BLOCKS:
            raise NetworkArgsError(msg(
                "network.flux.bad_train_blocks", "network_args train_blocks={value}: expected one of {choices}",
                value=repr(choice), choices=", ".join(TRAIN_BLOCKS),
            ))  # fmt: skip
        return ("double", "single") if choice == "all" else (choice,)

    def extracted_targets(self, models: Models) -> list[Target]:
        """As sd-scripts' flux_extract_lora: every weight of the double and single blocks (attention, MLP and
        modulation layers; not the norms), by its BFL name; not the embedders, the final layer or the text
        encoders."""
        return block_targets(models.unet, ("double", "single")) if models.unet is not None else []

    def split_fused(self, args: ArgReader | None) -> bool:
        return bool(args is not None and args.flag("split_qkv"))

    def rank_chooser(self, models: Models, args: ArgReader, dim: int, alpha: float) -> RankChooser:
        """sd-scripts' rules: the network rank, else the rank of the layer's kind (type dims), 0 for blocks
        left out of the block selections; embedders only with in_dims, at their own ranks."""
        type_dims = [(args.integer(key), ids) for key, ids in TYPE_DIMS]
        in_dims = parse_in_dims(args)
        counts = {"double": 0, "single": 0}
        if models.unet is not None:
            for block in _blocks(models.unet):
                counts[block.kind] += 1
        selections = {}
        for kind, key in zip(("double", "single"), BLOCK_SELECTIONS, strict=True):
            text = args.text(key)
            if text is not None:
                selections[kind] = parse_block_selection(text, counts[kind], key)

        def choose(target: Target) -> tuple[int | None, float | None]:
            if target.text_encoder_index is not None:
                return dim, alpha
            name = target.lora_name
            in_index = _in_dims_index(name)
            if in_index is not None:
                return (in_dims[in_index] if in_dims else 0), alpha
            rank = dim
            for type_dim, ids in type_dims:
                if type_dim is not None and all(part in name for part in ids):
                    rank = type_dim
                    break
            kind, _, rest = name[len(UNET_PREFIX) + 1:].partition("_blocks_")
            selection = selections.get(kind)
            if rank and selection is not None and not selection[int(rest.split("_")[0])]:
                rank = 0
            return rank, alpha

        return choose


FLUX_NETWORK = FluxNetworkLayout()
