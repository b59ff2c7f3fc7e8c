"""--fp8_base / --fp8_base_unet: the frozen base model's weights stored in float8 (e4m3).

Every `nn.Linear` and `nn.Conv2d` of the frozen model keeps its weight in `torch.float8_e4m3fn`
(1 byte per weight: half of bf16/fp16), and its forward upcasts that weight to the compute dtype
just for its own matmul or convolution. A small autograd function keeps the float8 weight for the
backward pass and upcasts it again there: with plain autograd every layer's upcast copy would be
saved for backward, and a step would hold the whole model in 16 bits again (measured: more memory
than without float8). Norms, embeddings and biases (a few percent of the parameters) stay in the
compute dtype.

sd-scripts casts the whole module to float8 and relies on CUDA autocast to upcast each weight,
which leaves non-matmul ops (norms, embeddings) to fail or to be patched back one by one, and does
nothing on the CPU. Upcasting in the layer's own forward works under any autocast state, on any
device, and keeps the class of each layer (network modules find their targets by class name) and
the state-dict keys unchanged. Converting before the network is applied matters: the network then
wraps the float8 forward as the layer's original forward.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

FP8_DTYPE = torch.float8_e4m3fn


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


class _Fp8Linear(torch.autograd.Function):
    """linear(x, upcast(w)) that keeps the float8 weight, not its upcast copy, for the backward pass.
    Plain autograd would save every layer's 16-bit copy until backward: all the memory fp8 saves."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                dtype: torch.dtype) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.dtype = dtype
        return F.linear(x, weight.to(dtype), bias)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        (weight,) = ctx.saved_tensors
        grad_input = grad_output @ weight.to(grad_output.dtype) if ctx.needs_input_grad[0] else None
        return grad_input, None, None, None


class _Fp8Conv2d(torch.autograd.Function):
    """conv2d with an upcast weight, saving the float8 weight for backward (see _Fp8Linear)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype,
                layer: nn.Conv2d) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.dtype, ctx.input_shape = dtype, x.shape
        ctx.conv = (layer.stride, layer.padding, layer.dilation, layer.groups)
        return layer._conv_forward(x, weight.to(dtype), bias)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        (weight,) = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        grad_input = torch.nn.grad.conv2d_input(
            ctx.input_shape, weight.to(grad_output.dtype), grad_output, stride, padding, dilation, groups
        )
        return grad_input, None, None, None, None


def _linear_forward(layer: nn.Linear) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        dtype = _compute_dtype(x)
        bias = layer.bias.to(dtype) if layer.bias is not None else None
        return _Fp8Linear.apply(x.to(dtype), layer.weight, bias, dtype)

    return forward


def _conv_forward(layer: nn.Conv2d) -> Callable[[torch.Tensor], torch.Tensor]:
    if layer.padding_mode != "zeros":
        raise ValueError(f"float8 weights: Conv2d with padding_mode={layer.padding_mode!r} is not supported")

    def forward(x: torch.Tensor) -> torch.Tensor:
        dtype = _compute_dtype(x)
        bias = layer.bias.to(dtype) if layer.bias is not None else None
        return _Fp8Conv2d.apply(x.to(dtype), layer.weight, bias, dtype, layer)

    return forward


def store_weights_in_fp8(module: nn.Module, other_dtype: torch.dtype, keep: Sequence[str] = ()) -> int:
    """Linear/Conv2d weights of `module` to float8 with an upcasting forward; every other floating
    parameter and buffer to `other_dtype`. Layers whose module path matches one of the `keep` regular
    expressions (`re.search`, as finetrainers' --layerwise_upcasting_skip_modules_pattern) stay in
    `other_dtype`. Returns how many layers were converted. The module must be frozen: float8 weights take
    no gradients."""
    converted = 0
    kept = [re.compile(pattern) for pattern in keep]
    with torch.no_grad():
        for path, layer in module.named_modules():
            if any(pattern.search(path) for pattern in kept):
                continue
            if type(layer) in (nn.Linear, nn.Conv2d) and layer.weight.dtype != FP8_DTYPE:  # subclasses may differ
                layer.weight.data = layer.weight.data.to(FP8_DTYPE)
                layer.forward = _linear_forward(layer) if type(layer) is nn.Linear else _conv_forward(layer)
                converted += 1
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.is_floating_point() and tensor.dtype != FP8_DTYPE:
                tensor.data = tensor.data.to(other_dtype)
    return converted


def fp8_parts(num_text_encoders: int, *, fp8_base: bool, fp8_base_unet: bool) -> frozenset[str]:
    """Which parts of the model --fp8_base/--fp8_base_unet put in float8 ("unet", "text_encoder1"...)."""
    if fp8_base_unet:
        return frozenset({"unet"})
    if fp8_base:
        return frozenset({"unet", *(f"text_encoder{i}" for i in range(1, num_text_encoders + 1))})
    return frozenset()
