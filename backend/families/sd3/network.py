"""SD 3.5 LoRA as sd-scripts' networks/lora_sd3.py lays it out, over diffusers' SD3Transformer2DModel.

sd-scripts trains SAI's MMDiT and wraps every Linear inside its joint blocks' context and x halves
(`SingleDiTBlock`); files name a layer `lora_unet_<SAI path with "." -> "_">`
(`lora_unet_joint_blocks_0_x_block_attn_qkv`), CLIP-L `lora_te1_...`, CLIP-G `lora_te2_...`, T5-XXL
`lora_te3_...` (only with train_t5xxl). SAI fuses q, k, v into one Linear where diffusers has three: those
are fused targets (backend/networks/fused.py). The last block's context modulation orders its output
(shift, scale) in SAI's model and (scale, shift) in diffusers': a halves-swapped target
(backend/networks/swapped.py), as is the final layer's modulation. The tables follow diffusers'
convert_sd3_transformer_checkpoint_to_diffusers (and keymap.py).

network_args (sd-scripts' names and meaning):

| key | meaning |
| --- | --- |
| train_t5xxl | LoRA on T5-XXL too (with the text encoders trained) |
| split_qkv | fused qkv layers keep a down/up pair per part (saved merged, as sd-scripts does) |
| context_attn_dim, context_mlp_dim, context_mod_dim, x_attn_dim, x_mlp_dim, x_mod_dim | rank per kind of layer, 0 = none |
| emb_dims | 6 ranks for context_embedder, t_embedder, x_embedder, y_embedder, final_mod, final_linear (0 = none); none by default |
| train_block_indices | joint blocks to train: all, none, or indices and ranges (0,2,5-8) |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from backend.families.flux.network import parse_block_selection
from backend.messages import msg
from backend.networks.args import ArgReader, NetworkArgsError
from backend.networks.models import Models, NetworkLayout, RankChooser
from backend.networks.naming import UNET_PREFIX, Target, find_targets, lora_name, text_encoder_module_name

# sd-scripts' LoRANetwork.TEXT_ENCODER_TARGET_REPLACE_MODULE and prefixes.
TEXT_ENCODER_CLASSES = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP", "T5Attention", "T5DenseGatedActDense")
TEXT_ENCODER_PREFIXES = ("lora_te1", "lora_te2", "lora_te3")  # CLIP-L, CLIP-G, T5-XXL

# (SAI layer inside the block half, diffusers modules relative to the joint block, in output order); in
# SAI's module order. `pre_only`: absent from the last block's context half.
CONTEXT_BLOCK: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("attn.qkv", ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"), True),
    ("attn.proj", ("attn.to_add_out",), False),
    ("mlp.fc1", ("ff_context.net.0.proj",), False),
    ("mlp.fc2", ("ff_context.net.2",), False),
    ("adaLN_modulation.1", ("norm1_context.linear",), True),
)
X_BLOCK: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("attn.qkv", ("attn.to_q", "attn.to_k", "attn.to_v")),
    ("attn.proj", ("attn.to_out.0",)),
    ("attn2.qkv", ("attn2.to_q", "attn2.to_k", "attn2.to_v")),  # MMDiT-X (Medium) dual-attention blocks only
    ("attn2.proj", ("attn2.to_out.0",)),
    ("mlp.fc1", ("ff.net.0.proj",)),
    ("mlp.fc2", ("ff.net.2",)),
    ("adaLN_modulation.1", ("norm1.linear",)),
)
# emb_dims, in its order: (index, SAI path, diffusers path, halves swapped).
EMB_LAYERS: tuple[tuple[int, str, str, bool], ...] = (
    (0, "context_embedder", "context_embedder", False),
    (1, "t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1", False),
    (1, "t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2", False),
    (2, "x_embedder.proj", "pos_embed.proj", False),
    (3, "y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1", False),
    (3, "y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2", False),
    (4, "final_layer.adaLN_modulation.1", "norm_out.linear", True),
    (5, "final_layer.linear", "proj_out", False),
)
EMB_DIMS_ORDER = ("context_embedder", "t_embedder", "x_embedder", "y_embedder", "final_mod", "final_linear")
# type dims: the key and the substrings a layer's name must all contain (sd-scripts' identifiers, first match wins).
TYPE_DIMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("context_attn_dim", ("context_block", "attn")),
    ("context_mlp_dim", ("context_block", "mlp")),
    ("context_mod_dim", ("context_block", "adaLN_modulation")),
    ("x_attn_dim", ("x_block", "attn")),
    ("x_mlp_dim", ("x_block", "mlp")),
    ("x_mod_dim", ("x_block", "adaLN_modulation")),
)
CONV_KEYS = ("conv_dim", "conv_alpha")
UNET_BLOCK_KEYS = ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas", "down_lr_weight",
                   "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold")


def _target(name: str, modules: list[nn.Module], diffusers_path: str | None, swapped: bool = False) -> Target:
    return Target(
        lora_name=lora_name(UNET_PREFIX, name),
        diffusers_name=lora_name(UNET_PREFIX, diffusers_path) if diffusers_path else lora_name(UNET_PREFIX, name),
        module=modules[0], kind="conv" if isinstance(modules[0], nn.Conv2d) else "linear", text_encoder_index=None,
        members=tuple(modules) if len(modules) > 1 else (), swapped_halves=swapped,
    )


def block_targets(transformer: nn.Module) -> list[Target]:
    """The joint blocks' layers as sd-scripts names them (context half, then x half, per block)."""
    targets = []
    blocks = list(transformer.transformer_blocks)
    for i, block in enumerate(blocks):
        last = i == len(blocks) - 1
        root = f"transformer_blocks.{i}"
        for sai, paths, pre_only in CONTEXT_BLOCK:
            if last and not pre_only:
                continue
            modules = [block.get_submodule(p) for p in paths]
            swapped = last and sai.startswith("adaLN")  # the pre-only modulation: (shift, scale) in SAI's model
            diffusers = f"{root}.{paths[0]}" if len(paths) == 1 and not swapped else None
            targets.append(_target(f"joint_blocks.{i}.context_block.{sai}", modules, diffusers, swapped))
        for sai, paths in X_BLOCK:
            if sai.startswith("attn2") and getattr(block, "attn2", None) is None:
                continue
            modules = [block.get_submodule(p) for p in paths]
            diffusers = f"{root}.{paths[0]}" if len(paths) == 1 else None
            targets.append(_target(f"joint_blocks.{i}.x_block.{sai}", modules, diffusers))
    return targets


def emb_targets(transformer: nn.Module) -> list[Target]:
    return [_target(sai, [transformer.get_submodule(path)], None if swapped else path, swapped)
            for _, sai, path, swapped in EMB_LAYERS]


def _emb_index(name: str) -> int | None:
    for index, sai, _, _ in EMB_LAYERS:
        if name == lora_name(UNET_PREFIX, sai):
            return index
    return None


def parse_emb_dims(args: ArgReader) -> list[int] | None:
    text = args.text("emb_dims")
    if text is None:
        return None
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        dims = [int(part) for part in text.split(",")]
    except ValueError:
        dims = []
    if len(dims) != len(EMB_DIMS_ORDER) or any(d < 0 for d in dims):
        raise NetworkArgsError(msg(
            "network.sd3.bad_emb_dims",
            "network_args emb_dims={value}: expected 6 ranks (0 = none) for {layers}, e.g. emb_dims=[4,0,0,0,0,0]",
            value=repr(text), layers=", ".join(EMB_DIMS_ORDER),
        ))  # fmt: skip
    return dims


class Sd3NetworkLayout(NetworkLayout):
    label = "SD 3.5"
    network_module = "networks.lora_sd3"
    shape_keys = ("split_qkv", "train_t5xxl", *(key for key, _ in TYPE_DIMS), "emb_dims", "train_block_indices")

    def refused_reason(self, key: str) -> str | None:
        if key in CONV_KEYS:
            return msg("network.sd3.no_conv", "SD 3.5's joint blocks have no convolutions to train")
        if key in UNET_BLOCK_KEYS:
            return msg(
                "network.sd3.no_unet_blocks",
                "it sets U-Net blocks, which SD 3.5 does not have; choose joint blocks with train_block_indices and "
                "ranks per kind of layer with x_attn_dim, context_mlp_dim, ...",
            )  # fmt: skip
        return None

    def foreign_modules_reason(self, network_args: Mapping[str, Any]) -> str | None:
        from backend.networks.layout_view import plugin_args_reason

        return plugin_args_reason(self.label, network_args)

    def plugin_view(self, unet: nn.Module) -> nn.Module | None:
        """SAI's layout (plugin_view.py): LyCORIS then writes sd-scripts' names (lora_unet_joint_blocks_0_...)."""
        from backend.families.sd3.plugin_view import sai_view

        return sai_view(unet, CONTEXT_BLOCK, X_BLOCK, EMB_LAYERS)

    def text_encoder_prefixes(self, count: int) -> list[str]:
        return list(TEXT_ENCODER_PREFIXES[:count])

    def targets(self, models: Models, args: ArgReader | None,
                weights: Mapping[str, torch.Tensor] | None) -> tuple[list[Target], list[Target]]:
        if args is not None:
            return self._targets(models, bool(args.flag("train_t5xxl")), "emb_dims" in args)
        assert weights is not None
        return self._targets(models, any(key.startswith(TEXT_ENCODER_PREFIXES[2]) for key in weights), True)

    def every_target(self, models: Models) -> tuple[list[Target], list[Target]]:
        return self._targets(models, True, True)

    def _targets(self, models: Models, with_t5: bool, with_emb: bool) -> tuple[list[Target], list[Target]]:
        te_targets: list[Target] = []
        prefixes = self.text_encoder_prefixes(len(models.text_encoders))
        for index, (te, prefix) in enumerate(zip(models.text_encoders, prefixes, strict=False)):
            if index >= 2 and not with_t5:  # sd-scripts: T5 only with train_t5xxl
                break
            names = text_encoder_module_name(te) if "CLIP" in type(te).__name__ else (lambda path: path)
            te_targets += find_targets(te, prefix, TEXT_ENCODER_CLASSES, names, index)
        unet_targets: list[Target] = []
        if models.unet is not None:
            unet_targets = block_targets(models.unet)
            if with_emb:
                unet_targets += emb_targets(models.unet)
        return te_targets, unet_targets

    def extracted_targets(self, models: Models) -> list[Target]:
        return block_targets(models.unet) if models.unet is not None else []

    def split_fused(self, args: ArgReader | None) -> bool:
        return bool(args is not None and args.flag("split_qkv"))

    def rank_chooser(self, models: Models, args: ArgReader, dim: int, alpha: float) -> RankChooser:
        """sd-scripts' rules: the network rank, else the rank of the layer's kind (type dims), 0 for joint blocks
        left out of train_block_indices; embedders only with emb_dims, at their own ranks."""
        type_dims = [(args.integer(key), ids) for key, ids in TYPE_DIMS]
        emb_dims = parse_emb_dims(args)
        blocks = len(models.unet.transformer_blocks) if models.unet is not None else 0
        text = args.text("train_block_indices")
        selection = parse_block_selection(text, blocks, "train_block_indices") if text is not None else None

        def choose(target: Target) -> tuple[int | None, float | None]:
            if target.text_encoder_index is not None:
                return dim, alpha
            name = target.lora_name
            emb = _emb_index(name)
            if emb is not None:
                return (emb_dims[emb] if emb_dims else 0), alpha
            rank = dim
            for type_dim, ids in type_dims:
                if type_dim is not None and all(part in name for part in ids):
                    rank = type_dim
                    break
            block = int(name.removeprefix(f"{UNET_PREFIX}_joint_blocks_").split("_")[0])
            if rank and selection is not None and not selection[block]:
                rank = 0
            return rank, alpha

        return choose


SD3_NETWORK = Sd3NetworkLayout()
