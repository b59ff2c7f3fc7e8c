"""DeepSpeed (ZeRO stage 1/2) and FSDP for full fine-tuning, chosen by accelerate's config file (or, for
DeepSpeed, by sd-scripts' --deepspeed flags: deepspeed_plugin.py).

Plain multi-process runs (`accelerate launch --multi_gpu`) need nothing from here: every process
holds the whole model and the loop averages gradients itself (docs/architecture.md). A full SDXL
fine-tune with optimizer state does not fit one 24 GB GPU that way; DeepSpeed ZeRO-2 splits the
optimizer state and gradients across GPUs, FSDP also the weights. Both need the trained modules
passed through `accelerator.prepare` together with the optimizer, so the fine-tune method puts
them in one `TrainedModules` container, and the loop runs the text encoders and the U-Net inside
its `forward(call)`: FSDP gathers the container's weights in its forward, which a call to the inner
modules alone would bypass. DeepSpeed then reduces gradients, clips them (its `gradient_clipping`
setting) and steps the optimizer and LR scheduler inside `accelerator.backward`; the loop's own
gradient averaging is skipped.

What does not fit this design is refused before the run starts (`launch_problems`), because it
would fail deep inside training or silently do something else: gradient accumulation (the loop
accumulates itself; DeepSpeed would step every micro-batch), ZeRO stage 3 (weights partitioned
outside FSDP-style forwards), the LoRA commands, and with FSDP: EMA, sampling and validation
(each reads whole weights outside the forward, on one process).

None of this has been run here: the development machines have no GPUs and no deepspeed. See
docs/multi-gpu.md.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from backend.messages import msg
from backend.options.schema import LORA_COMMANDS
from backend.training.run_errors import RunStopped

T = TypeVar("T")


class TrainedModules(torch.nn.ModuleDict):
    """The fine-tune's trained modules as one module, so accelerate can prepare them with the optimizer."""

    def forward(self, call: Callable[[], T]) -> T:  # type: ignore[override]
        return call()


def launch_backend() -> str | None:
    """"deepspeed" or "fsdp" when `accelerate launch` was configured for one, before any Accelerator exists."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return "deepspeed"
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "fsdp"
    return None


def accelerator_backend(accelerator: Any) -> str | None:
    name = str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type)).upper()
    return {"DEEPSPEED": "deepspeed", "FSDP": "fsdp"}.get(name)


def launch_problems(args: argparse.Namespace, command: str, validation_split: bool) -> list[str]:
    """Errors for a DeepSpeed/FSDP launch (or --deepspeed) this trainer cannot honour (empty without one)."""
    launched = launch_backend()
    deepspeed_flag = bool(getattr(args, "deepspeed", False))  # sd-scripts' --deepspeed (deepspeed_plugin.py)
    if launched == "fsdp" and deepspeed_flag:
        return [msg("preflight.sharded.deepspeed_and_fsdp", "--deepspeed cannot be used in a launch that accelerate's "
                    "config sets up for FSDP; use one of them")]
    backend = "deepspeed" if deepspeed_flag else launched
    if backend is None:
        return []
    name = "DeepSpeed" if backend == "deepspeed" else "FSDP"
    if command in LORA_COMMANDS:
        return [msg(
            "preflight.sharded.lora", "accelerate is configured for {name}, which only the fine-tuning commands "
            "(fine_tune, sdxl_train) support; a LoRA is small enough for plain data parallelism: launch with "
            "--multi_gpu instead", name=name,
        )]
    problems = []
    if args.gradient_accumulation_steps != 1:
        problems.append(msg(
            "preflight.sharded.accumulation", "--gradient_accumulation_steps {steps} cannot be used with {name}: the "
            "trainer accumulates gradients itself; use 1 (and a larger --train_batch_size or more GPUs)",
            steps=args.gradient_accumulation_steps, name=name,
        ))
    if deepspeed_flag and args.zero_stage == 3:
        problems.append(msg("preflight.sharded.zero_stage_3", "--zero_stage 3 is not supported (it splits the weights "
                            "too, and sampling, EMA and saving read them whole); use --zero_stage 2, or FSDP "
                            "(docs/multi-gpu.md)"))
    elif backend == "deepspeed" and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3":
        problems.append(msg("preflight.sharded.zero3", "DeepSpeed ZeRO stage 3 is not supported; use zero_stage 2 "
                            "or FSDP (docs/multi-gpu.md)"))
    if backend == "fsdp":
        used = [flag for flag, on in (
            ("--ema", args.ema), ("--sample_prompts", args.sample_prompts), ("validation_split", validation_split),
        ) if on]
        if used:
            problems.append(msg(
                "preflight.sharded.fsdp_whole_weights", "{flags} cannot be used with FSDP: they read whole weights "
                "outside the sharded forward pass; turn them off or use DeepSpeed ZeRO-2 (docs/multi-gpu.md)",
                flags=", ".join(used),
            ))
    return problems


def prepare_sharded(accelerator: Any, trained: TrainedModules, optimizer: Any, lr_scheduler: Any,
                    batch_size: int) -> tuple[Any, Any, Any]:
    """(engine, optimizer, scheduler) from accelerate for DeepSpeed or FSDP."""
    if accelerator.gradient_accumulation_steps != 1:
        raise RunStopped(msg(
            "run.sharded.accumulation", "the accelerate config sets gradient_accumulation_steps to {steps}; set it to "
            "1 (the trainer accumulates gradients itself)", steps=accelerator.gradient_accumulation_steps,
        ))
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None:
        # No dataloader goes through accelerate (the dataset splits the batches), so DeepSpeed cannot
        # infer its "auto" micro-batch size.
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = batch_size
    return accelerator.prepare(trained, optimizer, lr_scheduler)
