"""Views of FLUX.1 / Chroma / SD 3.5 transformers laid out as sd-scripts' own (BFL / SAI) models, for plug-in
network modules (lycoris.kohya, third-party sd-scripts-style modules).

sd-scripts hands those modules BFL's Flux and SAI's MMDiT, whose attention has one fused `qkv` Linear where
diffusers' transformer has `to_q`, `to_k`, `to_v` (FLUX single blocks fuse the MLP input too), and a few
modulations order their output (shift, scale) where diffusers has (scale, shift). A module wraps whatever
Linear it finds, by class and path (LyCORIS' `full` preset: every Linear inside a `DoubleStreamBlock`), and
names it `lora_unet_<path>`. So the view places, under BFL/SAI paths and class names:

- our real layers where one diffusers Linear is the sd-scripts layer;
- a `SegmentedLinear` where it is not: an `nn.Linear` with no weights of its own, whose `weight`/`bias` are
  the parts' rows in sd-scripts' order and whose forward computes the sd-scripts layer from the parts.
  Once a network replaces that forward (its hook), each part returns its rows of the replaced forward's
  output (computed once per input for all parts), so the network acts on the fused layer as on sd-scripts'
  model, whichever algorithm it uses (LoRA, LoKr, LoHa, OFT, ...), and writes sd-scripts' names.

Merging such a network into the model (`merge_to`) would write into the view's layers, which hold no weights;
the loader refuses merges of networks built over a view (loader._without_merge).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from backend.messages import msg
from backend.networks.bridge import ModelView, _view_class

# (part index, first row, end row) of a part's weight, in the order the sd-scripts layer's rows come.
Segment = tuple[int, int, int]


@dataclass(frozen=True)
class ViewLeaf:
    """An sd-scripts layer: its path in sd-scripts' model and the diffusers Linears (or Conv) computing it."""

    path: str
    parts: tuple[nn.Module, ...]
    swapped_halves: bool = False  # one part whose output halves sd-scripts has the other way round


class SegmentedLinear(nn.Linear):
    """An sd-scripts Linear made of rows of diffusers Linears (fused qkv, halves-swapped modulations)."""

    def __init__(self, parts: Sequence[nn.Linear], segments: Sequence[Segment]) -> None:
        nn.Module.__init__(self)  # not nn.Linear's: it would allocate a weight
        self._parts = list(parts)  # a plain list: the parts belong to the model, not to this view
        self.segments = tuple(segments)
        self.in_features = parts[0].in_features
        self.out_features = sum(end - start for _, start, end in self.segments)
        offsets, offset = [], 0
        for _, start, end in self.segments:
            offsets.append(offset)
            offset += end - start
        # per part: the slices of this layer's output making up the part's output, in the part's row order
        self._part_slices: list[list[tuple[int, int]]] = []
        for index in range(len(self._parts)):
            mine = sorted((start, offsets[i], offsets[i] + end - start)
                          for i, (part, start, end) in enumerate(self.segments) if part == index)
            self._part_slices.append([(lo, hi) for _, lo, hi in mine])
        self._cache: tuple[torch.Tensor, torch.Tensor, set[int]] | None = None
        self._original_forwards = [part.forward for part in self._parts]
        for index, part in enumerate(self._parts):
            part.forward = _routed(self, index)  # instance attribute: the part's class forward stays as is

    @property  # type: ignore[override]
    def weight(self) -> torch.Tensor:
        return torch.cat([self._parts[p].weight[start:end] for p, start, end in self.segments], 0)

    @weight.setter
    def weight(self, value: Any) -> None:
        raise RuntimeError(
            "this layer of the model view is made of several layers of the model; merging a network into it is "
            "not supported (train with the network applied, or merge with the LoRA tools)"
        )

    @property  # type: ignore[override]
    def bias(self) -> torch.Tensor | None:
        if any(part.bias is None for part in self._parts):
            return None
        return torch.cat([self._parts[p].bias[start:end] for p, start, end in self.segments], 0)

    @bias.setter
    def bias(self, value: Any) -> None:
        if value is not None:
            raise RuntimeError("a layer of the model view has no bias of its own")

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The sd-scripts layer's output from the parts' own forwards (so their casts and hooks apply)."""
        outputs = [forward(x) for forward in self._original_forwards]
        return torch.cat([outputs[p][..., start:end] for p, start, end in self.segments], -1)

    def hooked(self) -> bool:
        """Whether a network replaced this layer's forward (LyCORIS and sd-scripts modules set `forward` on
        the instance; restoring sets back the class's)."""
        forward = self.__dict__.get("forward")
        return forward is not None and getattr(forward, "__func__", None) is not SegmentedLinear.forward

    def part_output(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if not self.hooked():
            return self._original_forwards[index](x)
        cache = self._cache
        if cache is None or cache[0] is not x or index in cache[2]:
            cache = (x, self(x), set())  # self(x): the network's forward for the whole layer
        cache[2].add(index)
        self._cache = None if len(cache[2]) == len(self._parts) else cache
        out = cache[1]
        slices = self._part_slices[index]
        if len(slices) == 1:
            return out[..., slices[0][0]:slices[0][1]]
        return torch.cat([out[..., lo:hi] for lo, hi in slices], -1)


def _routed(layer: SegmentedLinear, index: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return layer.part_output(index, x)

    forward._layout_view_route = True  # type: ignore[attr-defined]
    return forward


def _unroute(part: nn.Module) -> None:
    """A part wired into an earlier view goes back to its class's forward before a new view wires it."""
    forward = part.__dict__.get("forward")
    if getattr(forward, "_layout_view_route", False):
        del part.__dict__["forward"]


def layer_for(leaf: ViewLeaf) -> nn.Module:
    """The module a view places for `leaf`: the real layer when one diffusers layer is the sd-scripts layer."""
    if len(leaf.parts) == 1 and not leaf.swapped_halves:
        return leaf.parts[0]
    for part in leaf.parts:
        if not isinstance(part, nn.Linear):
            raise TypeError(f"{leaf.path}: only Linear layers can be fused in a model view")
        _unroute(part)
    if leaf.swapped_halves:
        rows = leaf.parts[0].out_features
        segments: list[Segment] = [(0, rows // 2, rows), (0, 0, rows // 2)]
    else:
        segments = [(i, 0, part.out_features) for i, part in enumerate(leaf.parts)]
    return SegmentedLinear(leaf.parts, segments)


def build_layout_view(model: nn.Module, leaves: Sequence[ViewLeaf], container_class: Callable[[str], str],
                      root_class: str) -> ModelView:
    """`model` as a tree of `leaves` under their sd-scripts paths; containers get `container_class(path)`."""
    view = _view_class(root_class, ModelView)()
    view.__dict__["_viewed_model"] = model
    nodes: dict[str, nn.Module] = {"": view}

    def node(path: str) -> nn.Module:
        if path not in nodes:
            parent, _, name = path.rpartition(".")
            created = _view_class(container_class(path))()
            node(parent)._modules[name] = created
            nodes[path] = created
        return nodes[path]

    for leaf in leaves:
        parent, _, name = leaf.path.rpartition(".")
        node(parent)._modules[name] = layer_for(leaf)
    return view


def plugin_args_reason(model: str, network_args: Mapping[str, Any]) -> str | None:
    """Why these network_args cannot go to a plug-in module over a layout view; None: they can. LyCORIS'
    train_norm wraps every *Norm module of the blocks; the view holds the Linears only (BFL's and SAI's norms
    differ from diffusers' in class and parameter names), so it would silently train none."""
    if str(network_args.get("train_norm", "")).strip().lower() in ("true", "1", "yes"):
        return msg(
            "network.layout_view.train_norm",
            "network_args train_norm=True is not supported on {model} (the norm layers of sd-scripts' {model} model "
            "are not matched to ours); leave train_norm out",
            model=model,
        )  # fmt: skip
    return None
