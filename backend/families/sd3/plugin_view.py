"""SD 3.5 as sd-scripts' SAI MMDiT (library/sd3_models.py) lays it out, for plug-in network modules
(lycoris.kohya): the paths and class names LyCORIS' presets match, over our diffusers transformer's layers
(backend/networks/layout_view.py).

LyCORIS' default preset matches `SingleDiTBlock` (each joint block's context and x halves), `PatchEmbed`
(x_embedder) and `TimestepEmbedding` (t_embedder) in sd-scripts' MMDiT, so it trains those, named as there:
`lora_unet_joint_blocks_0_x_block_attn_qkv` (fused q, k, v), `lora_unet_x_embedder_proj` (a conv),
`lora_unet_t_embedder_mlp_0`. The last block's context modulation and the final layer's modulation keep
SAI's (shift, scale) row order.
"""

from __future__ import annotations

import re

from torch import nn

from backend.networks.bridge import ModelView
from backend.networks.layout_view import ViewLeaf, build_layout_view

ContextTable = tuple[tuple[str, tuple[str, ...], bool], ...]
XTable = tuple[tuple[str, tuple[str, ...]], ...]
EmbTable = tuple[tuple[int, str, str, bool], ...]

_CLASSES: tuple[tuple[str, str], ...] = (
    (r"^joint_blocks$", "ModuleList"),
    (r"^joint_blocks\.\d+$", "MMDiTBlock"),
    (r"^joint_blocks\.\d+\.(context|x)_block$", "SingleDiTBlock"),
    (r"\.attn2?$", "AttentionLinears"),
    (r"_block\.mlp$", "MLP"),
    (r"\.adaLN_modulation$|^(t|y)_embedder\.mlp$", "Sequential"),
    (r"^x_embedder$", "PatchEmbed"),
    (r"^t_embedder$", "TimestepEmbedding"),
    (r"^y_embedder$", "Embedder"),
    (r"^final_layer$", "UnPatch"),
)


def sai_class(path: str) -> str:
    """The class of SAI's container at `path` (what LyCORIS' presets match)."""
    for pattern, name in _CLASSES:
        if re.search(pattern, path):
            return name
    raise KeyError(f"no MMDiT container at {path}")


def sai_leaves(transformer: nn.Module, context: ContextTable, x: XTable, emb_layers: EmbTable) -> list[ViewLeaf]:
    """Every SAI layer, in SAI's module order (embedders, joint blocks, final layer); the tables are
    network.py's (SAI layer -> diffusers modules)."""
    emb = {sai: ViewLeaf(sai, (transformer.get_submodule(path),), swapped) for _, sai, path, swapped in emb_layers}
    leaves = [emb[name] for name in ("x_embedder.proj", "t_embedder.mlp.0", "t_embedder.mlp.2", "y_embedder.mlp.0",
                                      "y_embedder.mlp.2", "context_embedder")]
    blocks = list(transformer.transformer_blocks)
    for i, block in enumerate(blocks):
        last = i == len(blocks) - 1
        for sai, paths, pre_only in context:
            if last and not pre_only:
                continue
            swapped = last and sai.startswith("adaLN")  # the pre-only modulation: (shift, scale) in SAI's model
            parts = tuple(block.get_submodule(p) for p in paths)
            leaves.append(ViewLeaf(f"joint_blocks.{i}.context_block.{sai}", parts, swapped))
        for sai, paths in x:
            if sai.startswith("attn2") and getattr(block, "attn2", None) is None:
                continue
            parts = tuple(block.get_submodule(p) for p in paths)
            leaves.append(ViewLeaf(f"joint_blocks.{i}.x_block.{sai}", parts))
    leaves += [emb["final_layer.linear"], emb["final_layer.adaLN_modulation.1"]]
    return leaves


def sai_view(transformer: nn.Module, context: ContextTable, x: XTable, emb_layers: EmbTable) -> ModelView:
    return build_layout_view(transformer, sai_leaves(transformer, context, x, emb_layers), sai_class, "MMDiT")
