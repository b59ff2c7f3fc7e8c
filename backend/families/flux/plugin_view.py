"""FLUX.1 / Chroma as sd-scripts' BFL model (library/flux_models.py, chroma_models.py) lays them out, for plug-in
network modules (lycoris.kohya): the paths and class names LyCORIS' presets match (`DoubleStreamBlock`,
`SingleStreamBlock`), over our diffusers transformer's layers (backend/networks/layout_view.py).

So LyCORIS' default preset trains every Linear of the double and single blocks, as on sd-scripts, and names
them as there: `lora_unet_double_blocks_0_img_attn_qkv` (fused q, k, v), `lora_unet_single_blocks_0_linear1`
(q, k, v and the MLP input). The embedders, Chroma's approximator and the final layer are in the view too,
under BFL's names, for presets that name them.
"""

from __future__ import annotations

import re

from torch import nn

from backend.networks.bridge import ModelView
from backend.networks.layout_view import ViewLeaf, build_layout_view

BlockTable = tuple[tuple[str, tuple[str, ...]], ...]
InLayers = tuple[tuple[int, str, str], ...]

# BFL final layer -> diffusers: (BFL path, diffusers path, output halves swapped: BFL (shift, scale)).
FINAL_LAYER = (("final_layer.linear", "proj_out", False), ("final_layer.adaLN_modulation.1", "norm_out.linear", True))
# Chroma's approximator (BFL Approximator of MLPEmbedders; diffusers' layers are PixArtAlphaTextProjections).
APPROXIMATOR = "distilled_guidance_layer"

_CLASSES: tuple[tuple[str, str], ...] = (
    (r"^(double|single)_blocks$", "ModuleList"),
    (r"^double_blocks\.\d+$", "DoubleStreamBlock"),
    (r"^single_blocks\.\d+$", "SingleStreamBlock"),
    (r"\.(img_mod|txt_mod|modulation)$", "Modulation"),
    (r"\.(img_attn|txt_attn)$", "SelfAttention"),
    (r"\.(img_mlp|txt_mlp)$|^final_layer\.adaLN_modulation$", "Sequential"),
    (r"^(time_in|vector_in|guidance_in)$|^distilled_guidance_layer\.layers\.\d+$", "MLPEmbedder"),
    (r"^distilled_guidance_layer$", "Approximator"),
    (r"^distilled_guidance_layer\.layers$", "ModuleList"),
    (r"^final_layer$", "LastLayer"),
)


def bfl_class(path: str) -> str:
    """The class of BFL's container at `path` (what LyCORIS' presets match)."""
    for pattern, name in _CLASSES:
        if re.search(pattern, path):
            return name
    raise KeyError(f"no BFL container at {path}")


def _module(root: nn.Module, path: str) -> nn.Module | None:
    try:
        return root.get_submodule(path)
    except AttributeError:
        return None


def bfl_leaves(transformer: nn.Module, double: BlockTable, single: BlockTable, in_layers: InLayers) -> list[ViewLeaf]:
    """Every BFL layer our transformer has, in BFL's module order, with the diffusers layers computing it
    (`double`, `single`, `in_layers`: network.py's tables, BFL layer -> diffusers modules)."""
    leaves = []
    for _, bfl, path in in_layers[:1]:  # img_in, then (Chroma) the approximator, the other embedders
        if (module := _module(transformer, path)) is not None:
            leaves.append(ViewLeaf(bfl, (module,)))
    approximator = _module(transformer, APPROXIMATOR)
    if approximator is not None:
        for name in ("in_proj",):
            leaves.append(ViewLeaf(f"{APPROXIMATOR}.{name}", (approximator.get_submodule(name),)))
        for i, layer in enumerate(approximator.layers):
            leaves.append(ViewLeaf(f"{APPROXIMATOR}.layers.{i}.in_layer", (layer.linear_1,)))
            leaves.append(ViewLeaf(f"{APPROXIMATOR}.layers.{i}.out_layer", (layer.linear_2,)))
        leaves.append(ViewLeaf(f"{APPROXIMATOR}.out_proj", (approximator.out_proj,)))
    for _, bfl, path in in_layers[1:]:
        if (module := _module(transformer, path)) is not None:
            leaves.append(ViewLeaf(bfl, (module,)))
    for kind, blocks, table in (("double", transformer.transformer_blocks, double),
                                ("single", transformer.single_transformer_blocks, single)):
        for i, block in enumerate(blocks):
            for bfl, paths in table:
                modules = [_module(block, p) for p in paths]
                if any(m is None for m in modules):
                    continue  # Chroma's blocks have no modulation Linears
                leaves.append(ViewLeaf(f"{kind}_blocks.{i}.{bfl}", tuple(m for m in modules if m is not None)))
    for bfl, path, swapped in FINAL_LAYER:
        if (module := _module(transformer, path)) is not None:
            leaves.append(ViewLeaf(bfl, (module,), swapped_halves=swapped))
    return leaves


def bfl_view(transformer: nn.Module, root_class: str, double: BlockTable, single: BlockTable,
             in_layers: InLayers) -> ModelView:
    return build_layout_view(transformer, bfl_leaves(transformer, double, single, in_layers), bfl_class, root_class)
