"""One training step's pieces: per-sample random draws, latents, text conditioning, the family's
forward and the loss, and the gradient average over processes (see loop.py for the whole algorithm).

Every random draw of a sample comes from (seed, epoch, the sample's index in the epoch's global
order), so N processes with batch b train what one process with batch N x b trains.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

from backend.models.components import PromptEmbeds
from backend.objectives.base import Generators
from backend.objectives.loss import prediction_loss

if TYPE_CHECKING:
    from backend.training.run_setup import TrainingRun


SEED_MASK = 0x7FFF_FFFF_FFFF_FFFF


def sample_generators(run: TrainingRun, epoch: int, sample_indices: Iterable[int]) -> list[torch.Generator]:
    """One generator per sample, seeded by (seed, epoch, its index in the epoch's global order), for its
    VAE posterior sample, noise and timestep: the same draws whichever process or batch holds it.

    On the device, like the tensors they fill: creating and seeding a generator is host work (no
    sync), and each draw is one small kernel per sample, queued like the rest of the step. Drawing on
    the CPU and copying would put the random numbers and a copy on the step's critical path."""
    device = run.accelerator.device
    return [torch.Generator(device=device).manual_seed(hash((run.seed, epoch, index)) & SEED_MASK)
            for index in sample_indices]


def seed_step_random(run: TrainingRun, epoch: int, batch_index: int) -> None:
    """Python's `random`, which per-step network choices draw from (DyLoRA's block), reseeded per global
    batch: the same choice on every process (and with any process count), as one process would make it."""
    random.seed(hash((run.seed, epoch, batch_index)) & SEED_MASK)


def batch_latents(run: TrainingRun, batch: dict, generator: Generators) -> torch.Tensor:
    device = run.accelerator.device
    if batch["latents"] is not None:
        return batch["latents"].to(device, dtype=run.weight_dtype, non_blocking=True)
    with torch.no_grad():
        # The posterior sample draws from the samples' own generators, not the global RNG, which
        # other code (DataLoader iterators, for one) consumes differently after a resume.
        latents = run.spec.encode_images(
            run.components.vae, batch["images"].to(device, non_blocking=True), generator  # one per sample
        )
    return latents.to(run.weight_dtype)


def text_conditioning(run: TrainingRun, captions: list[str]) -> PromptEmbeds:
    if run.text_cache is not None:
        return run.text_cache.lookup(captions, run.accelerator.device)
    config = run.step_config
    captions = [run.method.prompt_text(caption) for caption in captions]
    with torch.set_grad_enabled(run.method.train_text_encoder), run.accelerator.autocast():
        return run.spec.encode_captions(run.components, captions, config.max_token_length, config.clip_skip,
                                        weighted=config.weighted_captions)


def attention_kernel(run: TrainingRun) -> contextlib.AbstractContextManager:
    """--mem_eff_attn: SDPA restricted to its memory-efficient kernel (a CUDA-only choice)."""
    if run.step_config.mem_eff_attn and run.accelerator.device.type == "cuda":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION])
    return contextlib.nullcontext()


def batch_loss(run: TrainingRun, batch: dict, generator: Generators) -> torch.Tensor:
    """The loss of this process's share of a global batch, weighted so that the mean over the processes
    is the whole batch's mean loss (data/shares.py); `generator`: one per sample, or one for the batch."""
    device = run.accelerator.device
    latents = batch_latents(run, batch, generator)

    def call(noisy_latents: torch.Tensor, timesteps: torch.Tensor, extras: dict) -> torch.Tensor:
        def forward() -> torch.Tensor:  # the training method's forward pass (DeepSpeed/FSDP wrap it)
            embeds = run.spec.step_conditioning(text_conditioning(run, batch["captions"]), generator)
            with run.accelerator.autocast(), attention_kernel(run):
                return run.spec.predict(run.components.unet, noisy_latents, timesteps, embeds, **extras)

        return run.method.forward(forward)

    measured = run.family.forward(run.objective, latents, batch, generator, call)
    mask = batch["alpha_masks"]
    loss = prediction_loss(
        measured, run.objective.loss_type,
        # non_blocking: the loader pins these, so the copy need not hold the host back every step
        batch["loss_weights"].to(device, non_blocking=True),
        mask.to(device, non_blocking=True) if mask is not None else None,
    )
    weight = batch.get("share_weight", 1.0)  # 1: a whole batch (one process, validation, built by hand)
    return loss if weight == 1.0 else loss * weight


REDUCE_BUCKET_ELEMENTS = 1 << 26  # 256 MB of float32 per all_reduce: a full fine-tune's gradients in pieces


def average_gradients(run: TrainingRun, params: list[torch.nn.Parameter]) -> None:
    """Mean of the gradients over processes: the trained modules are not wrapped in DDP (a network's
    forward is never called; it hooks into the U-Net), so gradients are reduced here, in flat buffers
    of at most REDUCE_BUCKET_ELEMENTS (one buffer for a LoRA)."""
    if run.accelerator.num_processes == 1:
        return
    bucket: list[torch.nn.Parameter] = []
    size = 0
    for param in params:
        if bucket and size + param.numel() > REDUCE_BUCKET_ELEMENTS:
            _average_bucket(run.accelerator.num_processes, bucket)
            bucket, size = [], 0
        bucket.append(param)
        size += param.numel()
    if bucket:
        _average_bucket(run.accelerator.num_processes, bucket)


def _average_bucket(world: int, params: list[torch.nn.Parameter]) -> None:
    # float32 (one buffer whatever the dtypes; 16-bit grads summed without rounding), then one
    # has-a-gradient flag per parameter: one no process computed a gradient for (DyLoRA's idle blocks)
    # keeps grad None, so the optimizer skips it as with one process instead of stepping on zeros.
    device = params[0].device
    parts = [p.grad.reshape(-1).float() if p.grad is not None else torch.zeros(p.numel(), device=device)
             for p in params]
    flags = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    flat = torch.cat([*parts, flags])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for param, present in zip(params, (flat[-len(params):] > 0).tolist(), strict=True):
        count = param.numel()
        param.grad = flat[offset: offset + count].view_as(param).to(param.dtype) if present else None
        offset += count
