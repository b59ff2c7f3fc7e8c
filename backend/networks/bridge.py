"""What networks from other modules (lycoris.kohya, sd-scripts-style third-party modules) see of our models.

Those modules choose the layers to train by the class names and module paths of the models they are
given (LyCORIS presets: "every Linear/Conv inside a `Transformer2DModel`", "the module named
`conv_in`"), and name each layer `<prefix>_<path>`. sd-scripts gives them its own models; we train
diffusers/transformers models, whose trees differ from those:

- SDXL: sd-scripts' U-Net has the original SGM layout (`input_blocks.0.0`, `time_embed` and
  `label_emb` as `Sequential`s); diffusers' has `conv_in`, `conv_out` and two `TimestepEmbedding`s.
  LyCORIS' `full` preset matches those by name and class, so on diffusers' tree it trained six
  layers more than on sd-scripts'.
- All U-Nets: attention layers are diffusers' `Attention` where sd-scripts' U-Nets (SD 1.x/2.x and
  SDXL) have `CrossAttention`, so the `attn-only` preset found no U-Net layer at all.
- transformers 5's `CLIPTextModel` has no `text_model` child (sd-scripts pins transformers 4).

So those modules are given a *view* of each model (`model_views`): placeholder modules laid out with
sd-scripts' paths and class names, whose leaves are our real layers (the same objects, so the hooks
a network installs act on our models). Their own rules then pick exactly the layers, under exactly
the names, they pick on sd-scripts' models; files they write carry sd-scripts' key names and files
they read are matched by them. Only layers with parameters are leaves (nothing else can be wrapped).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from torch import nn

from backend.networks.naming import (
    ModuleNameMap,
    as_list,
    identity_name,
    resolve_unet_module_name,
    text_encoder_module_name,
)

# Classes whose sd-scripts counterparts are named differently (library/original_unet.py:568 and
# sdxl_original_unet.py:391 define `CrossAttention` for what diffusers calls `Attention`).
SD_SCRIPTS_CLASS_NAMES = {"Attention": "CrossAttention"}
# The classes of sd-scripts' model roots (what a network sees as the model itself).
SGM_UNET_CLASS = "SdxlUNet2DConditionModel"
# transformers 4's CLIPTextModel keeps its layers in a `text_model` child of this class.
CLIP_TEXT_TRANSFORMER_CLASS = "CLIPTextTransformer"

# SGM containers with no diffusers counterpart (sdxl_original_unet.py:840-1021): these are
# `nn.Sequential`s, every other one an `nn.ModuleList`.
_SGM_SEQUENTIAL = re.compile(r"^(time_embed|label_emb|label_emb\.0|.*\.(in_layers|emb_layers|out_layers))$")
_SGM_INPUT_BLOCK = re.compile(r"^input_blocks\.\d+$")

ContainerClass = Callable[[str, dict[str, str]], str]


class ViewNode(nn.Module):
    """A placeholder module of a view; subclasses only carry the class name a network matches."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a model view only shows a model's layout; run the model itself")


class ModelView(ViewNode):
    """The root of a view. Attributes it does not have (config, dtype, ...) are the model's."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            model = self.__dict__.get("_viewed_model")
            if model is None:
                raise
            return getattr(model, name)


_CLASSES: dict[tuple[str, type], type] = {}


def _view_class(name: str, base: type = ViewNode) -> type:
    key = (name, base)
    if key not in _CLASSES:
        _CLASSES[key] = type(name, (base,), {"__module__": __name__})
    return _CLASSES[key]


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _generic_container(path: str, children: dict[str, str]) -> str:
    return "ModuleList"


def _sgm_container(path: str, children: dict[str, str]) -> str:
    """Class of an SGM container from its path and its children's classes (`children`: name -> class)."""
    if _SGM_SEQUENTIAL.match(path):
        return "Sequential"
    if _SGM_INPUT_BLOCK.match(path) and children.get("0") != "ResnetBlock2D":
        return "Sequential"  # input_blocks holding conv_in or a downsampler alone
    return "ModuleList"


def _text_model_container(path: str, children: dict[str, str]) -> str:
    return CLIP_TEXT_TRANSFORMER_CLASS if path == "text_model" else "ModuleList"


def build_view(root: nn.Module, module_name: ModuleNameMap, root_class: str,
               container_class: ContainerClass = _generic_container) -> ModelView:
    """`root` laid out under the paths `module_name` gives its modules.

    Modules with parameters are placed as they are; other modules become placeholders of their
    sd-scripts class; paths `module_name` has no name for are left out (their layers appear under
    their own names). Containers that exist only in the target layout get `container_class`.
    """
    leaves: dict[str, nn.Module] = {}
    classes: dict[str, str] = {}
    order: list[str] = []  # the model's own order, so networks list their layers as on the model
    for path, module in root.named_modules():
        if not path:
            continue
        try:
            target = module_name(path)
        except (KeyError, ValueError):
            continue
        if target in leaves or target in classes or any(p in leaves for p in _prefixes(target)):
            continue  # placed already, or inside a layer placed whole
        if _has_parameters(module):
            leaves[target] = module
        elif len(module._modules) > 0:
            name = type(module).__name__
            classes[target] = SD_SCRIPTS_CLASS_NAMES.get(name, name)
        else:
            continue  # nothing to wrap in it (activations, dropout)
        order.append(target)

    child_classes: dict[str, dict[str, str]] = {}
    for path in order:
        parent, _, name = path.rpartition(".")
        child_classes.setdefault(parent, {})[name] = classes.get(path) or type(leaves[path]).__name__
    for path in order:
        for prefix in _prefixes(path):
            if prefix not in classes and prefix not in leaves:
                classes[prefix] = container_class(prefix, child_classes.get(prefix, {}))

    view = _view_class(root_class, ModelView)()
    view.__dict__["_viewed_model"] = root
    nodes: dict[str, nn.Module] = {"": view}

    def node(path: str) -> nn.Module:
        if path not in nodes:
            parent, _, name = path.rpartition(".")
            created = leaves[path] if path in leaves else _view_class(classes[path])()
            node(parent)._modules[name] = created  # not add_module: the root falls back to the model's attributes
            nodes[path] = created
        return nodes[path]

    for path in order:
        node(path)
    return view


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def unet_view(unet: nn.Module, unet_module_name: ModuleNameMap | None = None) -> ModelView:
    """sd-scripts' U-Net as a network module sees it: its SGM class and layout when the family names
    network modules by the original paths (SDXL), diffusers' otherwise."""
    module_name = resolve_unet_module_name(unet, unet_module_name)
    if module_name is not identity_name:
        return build_view(unet, module_name, SGM_UNET_CLASS, _sgm_container)
    return build_view(unet, module_name, type(unet).__name__)


def text_encoder_view(text_encoder: nn.Module) -> ModelView:
    """A CLIP text model as transformers 4 lays it out (layers under `text_model`); other encoders (T5) as
    they are."""
    if "CLIP" not in type(text_encoder).__name__:
        return build_view(text_encoder, identity_name, type(text_encoder).__name__)
    return build_view(text_encoder, text_encoder_module_name(text_encoder), type(text_encoder).__name__,
                      _text_model_container)


def model_views(text_encoder: nn.Module | list[nn.Module] | None, unet: nn.Module | None,
                unet_module_name: ModuleNameMap | None = None,
                family_view: nn.Module | None = None) -> tuple[Any, nn.Module | None]:
    """The views to hand a network module in place of `text_encoder` (one model or a list, as given)
    and `unet` (`family_view` when the family lays its denoiser out itself: FLUX.1, SD 3.5)."""
    views = [text_encoder_view(te) for te in as_list(text_encoder)]
    te_view: Any = views if isinstance(text_encoder, (list, tuple)) else (views[0] if views else None)
    if family_view is not None:
        return te_view, family_view
    return te_view, (unet_view(unet, unet_module_name) if unet is not None else None)
