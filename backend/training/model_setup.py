"""The base model read and put in place: on its device, in its precision, attention and checkpointing set.

Frozen parts are cast to the compute dtype, put in eval mode and never see gradients; parts the
fine-tune trains keep float32 master weights unless --full_fp16/--full_bf16.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate import Accelerator

from backend.families import label as family_label
from backend.families import model_file_options
from backend.families.loaded import family
from backend.models.components import Components
from backend.models.loading import reading_folders_whole
from backend.models.spec import ModelSpecification
from backend.training.activation_offload import offloading_checkpoint
from backend.training.attention import AttentionConfig, attention_warnings, use_xformers
from backend.training.block_swap import SwapPlan, move_except, swap_plan
from backend.training.block_swap_options import BlockSwapConfig
from backend.training.fp8_weights import fp8_parts, store_weights_in_fp8
from backend.training.host_memory import return_freed_memory_to_os
from backend.training.option_slice import OptionSlice
from backend.training.preflight import RunPlan

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """Which base model, and how it is read. Not an OptionSlice: `model_files` gathers the part-file options
    of every family (FLUX.1's --clip_l, --t5xxl, --ae), which other families' commands do not have."""

    pretrained_model_name_or_path: str
    v_parameterization: bool
    tokenizer_cache_dir: str | None
    lowram: bool  # read a single file straight to the device
    # Parts given as files of their own (FLUX.1's --clip_l/--t5xxl/--ae, SD's --vae), by option name; absent
    # options are None.
    model_files: Mapping[str, str | None] = field(default_factory=dict)
    # A diffusers folder's weights read whole, not memory-mapped (the SDXL and flow-matching commands' option).
    disable_mmap_load_safetensors: bool = False

    @classmethod
    def from_args(cls, args: Any) -> ModelConfig:
        return cls(args.pretrained_model_name_or_path, args.v_parameterization, args.tokenizer_cache_dir,
                   args.lowram, {name: getattr(args, name, None) for name in model_file_options()},
                   bool(getattr(args, "disable_mmap_load_safetensors", False)))


@dataclass(frozen=True)
class PlacementConfig(OptionSlice):
    """Where and in which precision the parts live, which attention kernel runs, what is checkpointed."""

    full_fp16: bool
    full_bf16: bool
    fp8_base: bool
    fp8_base_unet: bool
    no_half_vae: bool
    xformers: bool
    mem_eff_attn: bool
    gradient_checkpointing: bool
    cpu_offload_checkpointing: bool
    # train_video's: denoiser modules whose path matches one of these stay out of float8 (finetrainers' default
    # keeps embedders, projections in and out, norms); sd-scripts' --fp8_base converts every Linear/Conv2d.
    layerwise_upcasting_skip_modules_pattern: tuple[str, ...] = ()

    @property
    def attention(self) -> AttentionConfig:
        return AttentionConfig(xformers=self.xformers, mem_eff_attn=self.mem_eff_attn)

    @property
    def half_training(self) -> bool:
        """--full_fp16/--full_bf16: what is trained is kept in the compute dtype too, not float32."""
        return bool(self.full_fp16 or self.full_bf16)


def load_model(config: ModelConfig, plan: RunPlan, accelerator: Accelerator,
               dtype: torch.dtype = torch.float32) -> tuple[ModelSpecification, Components]:
    assert plan.model is not None
    spec = family(plan.model.family).spec
    with reading_folders_whole(config.disable_mmap_load_safetensors):
        components = spec.load(
            config.pretrained_model_name_or_path,
            v_prediction=True if config.v_parameterization else None,
            tokenizer_cache_dir=config.tokenizer_cache_dir,
            device=str(accelerator.device) if config.lowram else "cpu",
            dtype=dtype,
            files=config.model_files,
        )
    return spec, components


def place_model(config: PlacementConfig, accelerator: Accelerator, components: Components, weight_dtype: torch.dtype,
                trained: frozenset[str] = frozenset(), *, train_text_encoders: bool = False,
                host_blocks: Sequence[torch.nn.Module] = ()) -> None:
    """Modules onto the device. `trained` (fine-tuning) names the parts whose own weights are trained
    ("unet", "text_encoder1", ...): float32 master weights unless --full_fp16/--full_bf16.
    `train_text_encoders` (a network run): gradients flow through the frozen text encoders into the
    network. Frozen parts named by --fp8_base/--fp8_base_unet keep their Linear/Conv2d weights in
    float8 (fp8_weights.py). `host_blocks` (--blocks_to_swap) are denoiser blocks that stay in RAM, in
    their dtype: the block swapper brings them to the device one at a time (block_swap.py)."""
    device = accelerator.device
    train_dtype = weight_dtype if config.half_training else torch.float32

    def dtype_of(name: str) -> torch.dtype:
        # Frozen weights in the compute dtype: half the memory and faster matmuls under autocast.
        return train_dtype if name in trained else weight_dtype

    in_fp8 = fp8_parts(len(components.text_encoders), fp8_base=config.fp8_base,
                       fp8_base_unet=config.fp8_base_unet) - trained
    fp8_report: list[str] = []

    def place(name: str, label: str, module: torch.nn.Module) -> None:
        kept = host_blocks if name == "unet" else ()
        if name in in_fp8:  # converted where it was loaded, so the device never holds a 16-bit copy
            keep = config.layerwise_upcasting_skip_modules_pattern if name == "unet" else ()
            fp8_report.append(f"{label} ({store_weights_in_fp8(module, weight_dtype, keep)} layers)")
            move_except(module, kept, device, None)
        else:
            move_except(module, kept, device, dtype_of(name))
        module.eval()

    place("unet", "U-Net", components.unet)
    for index, encoder in enumerate(components.text_encoders, start=1):
        place(f"text_encoder{index}", f"text encoder {index}", encoder)
    if fp8_report:
        logger.info("weights stored in float8: %s", ", ".join(fp8_report))
        return_freed_memory_to_os()  # the 16-bit weights just freed would otherwise stay in the heap
    vae_dtype = torch.float32 if config.no_half_vae else weight_dtype
    components.vae.to(device=device, dtype=vae_dtype).eval()
    if use_xformers(config.attention, device.type):
        components.unet.enable_xformers_memory_efficient_attention()
    for warning in attention_warnings(config.attention, device.type):  # preflight said it too; the log keeps it
        logger.warning(warning)
    if config.gradient_checkpointing or config.cpu_offload_checkpointing:  # the offload implies it (sd-scripts)
        offload = config.cpu_offload_checkpointing and device.type == "cuda"
        components.unet.enable_gradient_checkpointing(offloading_checkpoint(device) if offload else None)
        for index, encoder in enumerate(components.text_encoders, start=1):
            if f"text_encoder{index}" in trained or train_text_encoders:
                # Non-reentrant: a LoRA run's frozen embeddings give the checkpointed layers no input that
                # requires grad, and reentrant checkpointing would then drop the network's gradients there.
                encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                # transformers checkpoints only in training mode, and a network run keeps the encoder in eval
                # mode: checkpointing did nothing. CLIP has no dropout, so the mode changes nothing else.
                encoder.train()


def plan_block_swap(config: BlockSwapConfig, components: Components, device: torch.device) -> SwapPlan | None:
    """The blocks --blocks_to_swap keeps in RAM (None: off, or no CUDA). Raises BlockSwapError (the family
    cannot swap, or N is over its limit) before anything is put on the device."""
    if not config.runs_on(device.type):
        return None
    return swap_plan(family(components.family), components.unet, config.requested, family_label(components.family))


def prepare_model(model: ModelConfig, placement: PlacementConfig, plan: RunPlan, accelerator: Accelerator,
                  weight_dtype: torch.dtype, *, train_text_encoders: bool, block_swap: BlockSwapConfig | None = None,
                  before_placing: Callable[[Components], None] | None = None,
                  ) -> tuple[ModelSpecification, Components, SwapPlan | None]:
    """The frozen model (network training): read straight in the compute dtype, so loading never holds a
    float32 copy (SDXL: 7 GB of RAM instead of 14). Only a float32 VAE (--no_half_vae) needs float32.
    With --blocks_to_swap the swapped blocks stay in RAM (the returned plan; installed once the network is).
    `before_placing` changes the loaded weights where they were read (--base_weights), before float8 or the device."""
    spec, components = load_model(model, plan, accelerator, torch.float32 if placement.no_half_vae else weight_dtype)
    if before_placing is not None:
        before_placing(components)
    swap = plan_block_swap(block_swap, components, accelerator.device) if block_swap else None
    place_model(placement, accelerator, components, weight_dtype, train_text_encoders=train_text_encoders,
                host_blocks=swap.blocks if swap else ())
    return spec, components, swap
