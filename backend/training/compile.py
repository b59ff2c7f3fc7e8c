"""--torch_compile / --dynamo_backend, and accelerate's own dynamo settings.

The U-Net (with the network's modules hooked into it) is compiled in place with
`nn.Module.compile`, so the object, its attributes and its state-dict keys stay as they were: saving,
sampling and validation need no change. Text encoders run once per batch on 77-token sequences
(or not at all with cached outputs) and are left as they are.

accelerate compiles only the models passed to `accelerator.prepare`; the trainer prepares no model
(networks hook into the U-Net; gradients are averaged by the loop), so an `accelerate launch
--dynamo_backend ...` or a dynamo section of accelerate's config would be ignored without a word.
Its settings are read here and applied the same way; --torch_compile's backend wins when both are
given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from backend.messages import msg
from backend.training.option_slice import OptionSlice

logger = logging.getLogger(__name__)


def backend_problem(name: str) -> str | None:
    """Why `name` cannot be used as a dynamo backend in this PyTorch, or None."""
    import torch._dynamo

    try:
        torch._dynamo.lookup_backend(name)
    except Exception:  # noqa: BLE001 - any failure to resolve the backend is the user's answer
        available = ", ".join(torch._dynamo.list_backends())
        return msg("preflight.compile.unknown_backend", "--dynamo_backend {name} is not available in this PyTorch "
                   "({version}); available: {available} (eager and aot_eager too, for debugging)",
                   name=name, version=torch.__version__, available=available)
    return None


def toolchain_problem(backend: str, device_type: str) -> str | None:
    """inductor generates code that needs a compiler: Triton on CUDA, a C++ compiler on the CPU."""
    if backend != "inductor":
        return None
    import importlib.util
    import shutil

    if device_type == "cuda" and importlib.util.find_spec("triton") is None:
        return msg("preflight.compile.no_triton", "--torch_compile with inductor on a CUDA GPU needs the triton "
                   "package (pip install triton; on Windows triton-windows), or choose another --dynamo_backend")
    if device_type == "cpu" and not any(shutil.which(c) for c in ("g++", "clang++", "cl")):
        return msg("preflight.compile.no_compiler", "--torch_compile with inductor on the CPU needs a C++ compiler on "
                   "the PATH (g++, clang++ or MSVC's cl), or choose another --dynamo_backend")
    return None


@dataclass(frozen=True)
class CompileConfig(OptionSlice):
    """--torch_compile and its backend (accelerate's own dynamo settings come from the accelerator)."""

    torch_compile: bool
    dynamo_backend: str


def compile_settings(config: CompileConfig, accelerator: Any) -> dict[str, Any] | None:
    """torch.compile keyword arguments for this run, or None when nothing asks for compilation."""
    plugin = getattr(accelerator.state, "dynamo_plugin", None)
    from_accelerate = plugin is not None and str(plugin.backend.value).lower() != "no"
    if not config.torch_compile and not from_accelerate:
        return None
    settings = dict(plugin.to_kwargs()) if from_accelerate else {}
    settings.pop("use_regional_compilation", None)  # an accelerate-only setting, not torch.compile's
    if config.torch_compile:
        settings["backend"] = config.dynamo_backend
    return settings


def compile_unet(unet: torch.nn.Module, settings: dict[str, Any]) -> None:
    """Compile in place: the first steps (and the first sample or validation pass at a new size) take
    longer while graphs are built."""
    logger.info("compiling the U-Net with torch.compile(%s)", ", ".join(f"{k}={v!r}" for k, v in settings.items()))
    unet.compile(**settings)
