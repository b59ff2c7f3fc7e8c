"""Fit a run to a GPU: the option changes that bring the predicted peak under a card's size, cheapest first.

The order is what each saver costs in speed or quality (docs/performance.md "Memory planner"):

1. cache latents: the VAE leaves the GPU; no cost but random crops/colour augmentation (which need fresh
   latents, so they are turned off with it);
2. mixed precision bf16 where the run is in float32: faster on every recent GPU, weights and activations halve;
3. gradient checkpointing: about 20-30 % slower steps, the same result;
4. fused backward pass (full fine-tuning, Adafactor/AdamW/SGDNesterov, no gradient accumulation, not fp16):
   gradients freed as they are used, the same updates;
5. 8-bit AdamW in place of AdamW (not beside the fused backward pass, which cannot step it): the optimizer
   state shrinks four times, results very close;
6. cache text encoder outputs (the text encoders leave the GPU; a LoRA then trains the denoiser alone);
7. Adafactor in place of an AdamW (full fine-tuning only, where AdamW's two float32 moments per weight are the
   largest part: 21 GB for SDXL's U-Net): factored second moments, sd-scripts' recommended settings for it
   (scale_parameter/relative_step/warmup_init False, so the learning rate and schedule still apply), and the fused
   backward pass, which it allows; other training dynamics, so it comes after every saver that changes nothing;
8. fp8 base: frozen weights in float8, slower and slightly less precise;
9. block swap (families that have it), more blocks each time: slower, the same result;
10. a smaller batch, halved down to 1: the same images, more steps.

Resolution is never lowered: that changes what the model learns, so a run that still does not fit says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from backend.memory.estimate import Estimate, PlanError, estimate, family_for, training_kind
from backend.memory.optimizers import optimizer_name
from backend.memory.weights import WeightsUnreadable
from backend.messages import msg
from backend.models.errors import ModelMismatchError
from backend.options.schema import options_for

# The card sizes the GUI offers. An "8 GB" card has 8 GiB (8,192 MiB, as nvidia-smi reports it).
GB = 1024**3
# What a plan is refused with (an unknown family, an unreadable or mismatched model file); each message says why.
PLAN_ERRORS = (PlanError, WeightsUnreadable, ModelMismatchError, OSError)
CARD_SIZES_GB = (8, 12, 16, 24, 48)
FUSABLE = ("adafactor", "adamw", "sgdnesterov")
# The AdamW variants whose float32 (or 8-bit) moments Adafactor's factored state replaces.
ADAMW_LIKE = ("adamw", "adam", "adamw8bit", "adam8bit", "pagedadamw", "pagedadamw8bit", "pagedadamw32bit")
# sd-scripts' documented Adafactor settings for fine-tuning: the given learning rate and scheduler, unscaled.
ADAFACTOR_ARGS = ["scale_parameter=False", "relative_step=False", "warmup_init=False"]
SWAP_STEPS = (4, 8, 12, 16, 20, 24, 28, 32, 35)


class Change(NamedTuple):
    option: str
    value: Any
    reason: str


@dataclass(frozen=True)
class FitResult:
    fits: bool
    card_bytes: int
    before: Estimate
    after: Estimate
    changes: list[Change] = field(default_factory=list)

    @property
    def estimate(self) -> Estimate:
        """The estimate with the changes applied (the one that decides `fits`)."""
        return self.after

    def as_json(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "card_bytes": self.card_bytes,
            "before": self.before.as_json(),
            "after": self.after.as_json(),
            "changes": [list(change) for change in self.changes],
        }


def _on(options: Mapping[str, Any], name: str) -> bool:
    value = options.get(name)
    return value is True or (isinstance(value, str) and value.lower() == "true")


Step = Callable[[Mapping[str, Any]], list[Change]]


def _steps(command: str, options: Mapping[str, Any]) -> list[Step]:
    """The savers this command takes, in order; each looks at the options so far and proposes its changes."""
    takes = options_for(command)
    kind = training_kind(command)
    full_model = kind in ("finetune", "dreambooth")

    def cache_latents(o: Mapping[str, Any]) -> list[Change]:
        if "cache_latents" not in takes or _on(o, "cache_latents") or _on(o, "cache_latents_to_disk"):
            return []
        changes = [
            Change(
                "cache_latents",
                True,
                msg(
                    "memory.fit.cache_latents",
                    "the VAE leaves the GPU after encoding every image once; no cost in speed or quality",
                ),
            )
        ]
        for name in (
            "random_crop",
            "color_aug",
        ):  # these need a fresh latent each epoch: the trainer refuses both
            if name in takes and _on(o, name):
                changes.append(
                    Change(
                        name,
                        False,
                        msg("memory.fit.no_augmentation", "cached latents cannot be augmented per epoch"),
                    )
                )
        return changes

    def precision(o: Mapping[str, Any]) -> list[Change]:
        if "mixed_precision" not in takes or str(o.get("mixed_precision") or "no") != "no":
            return []
        return [
            Change(
                "mixed_precision",
                "bf16",
                msg(
                    "memory.fit.bf16",
                    "16-bit compute halves weights and "
                    "activations and is faster on recent GPUs (use fp16 on "
                    "cards without bf16, before RTX 30xx)",
                ),
            )
        ]

    def checkpointing(o: Mapping[str, Any]) -> list[Change]:
        if "gradient_checkpointing" not in takes or _on(o, "gradient_checkpointing"):
            return []
        return [
            Change(
                "gradient_checkpointing",
                True,
                msg(
                    "memory.fit.checkpointing",
                    "activations recomputed in the backward pass: about 20-30 % slower, same result",
                ),
            )
        ]

    def adam8bit(o: Mapping[str, Any]) -> list[Change]:
        name = str(o.get("optimizer_type") or "AdamW").lower()
        # the fused backward pass steps AdamW, Adafactor and SGDNesterov only: an 8-bit AdamW would be refused
        fused_on = _on(o, "fused_backward_pass")
        if (
            name not in ("adamw", "adam")
            or _on(o, "use_8bit_adam")
            or "optimizer_type" not in takes
            or fused_on
        ):
            return []
        return [
            Change(
                "optimizer_type",
                "AdamW8bit",
                msg(
                    "memory.fit.adam8bit", "8-bit optimizer states (a quarter of AdamW's); needs bitsandbytes"
                ),
            )
        ]

    def can_fuse(o: Mapping[str, Any], name: str) -> bool:
        return (
            "fused_backward_pass" in takes
            and full_model
            and not _on(o, "fused_backward_pass")
            and name in FUSABLE
            and int(o.get("gradient_accumulation_steps") or 1) <= 1
            and str(o.get("mixed_precision") or "no") != "fp16"  # the loss scaler needs every gradient first
        )

    def fused(o: Mapping[str, Any], name: str | None = None) -> list[Change]:
        """The fused backward pass if the run (with optimizer `name`, else its own) can take it."""
        if not can_fuse(o, name or str(o.get("optimizer_type") or "AdamW").lower()):
            return []
        return [
            Change(
                "fused_backward_pass",
                True,
                msg(
                    "memory.fit.fused",
                    "each gradient is applied and freed as soon as it is complete; the same updates",
                ),
            )
        ]

    def cache_text(o: Mapping[str, Any]) -> list[Change]:
        if "cache_text_encoder_outputs" not in takes or _on(o, "cache_text_encoder_outputs"):
            return []
        if full_model and _on(o, "train_text_encoder"):
            return []
        changes = [
            Change(
                "cache_text_encoder_outputs",
                True,
                msg(
                    "memory.fit.cache_text",
                    "the text encoders leave the GPU after encoding the captions once",
                ),
            )
        ]
        if "network_train_unet_only" in takes and not _on(o, "network_train_unet_only"):
            changes.append(
                Change(
                    "network_train_unet_only",
                    True,
                    msg("memory.fit.unet_only", "cached text outputs mean the text encoders are not trained"),
                )
            )
        for name in ("shuffle_caption", "caption_dropout_rate", "caption_tag_dropout_rate"):
            if name in takes and o.get(name) not in (None, False, 0, 0.0, ""):
                changes.append(
                    Change(
                        name,
                        False if name == "shuffle_caption" else 0.0,
                        msg(
                            "memory.fit.no_caption_change",
                            "cached text outputs need the same caption every epoch",
                        ),
                    )
                )
        return changes

    def adafactor(o: Mapping[str, Any]) -> list[Change]:
        name = optimizer_name(o.get("optimizer_type"), o.get("use_8bit_adam"))
        if not full_model or "optimizer_type" not in takes or name not in ADAMW_LIKE:
            return []
        arguments = msg(
            "memory.fit.adafactor_args",
            "Adafactor with the given learning rate and scheduler (AdamW's arguments do not apply to it)",
        )
        changes = [
            Change(
                "optimizer_type",
                "Adafactor",
                msg(
                    "memory.fit.adafactor",
                    "factored second moments instead of AdamW's two per weight (a small part of the "
                    "memory); trains differently, so check the learning rate (sd-scripts uses Adafactor for "
                    "SDXL fine-tuning on 24 GB)",
                ),
            ),
            Change("optimizer_args", ADAFACTOR_ARGS, arguments),
        ]
        if "use_8bit_adam" in takes and _on(o, "use_8bit_adam"):
            changes.append(Change("use_8bit_adam", False, arguments))
        return changes + fused(o, "adafactor")

    def fp8(o: Mapping[str, Any]) -> list[Change]:
        if "fp8_base" not in takes or _on(o, "fp8_base") or _on(o, "fp8_base_unet") or full_model:
            return []
        return [
            Change(
                "fp8_base",
                True,
                msg("memory.fit.fp8", "frozen weights kept in float8: slower and slightly less precise"),
            )
        ]

    def swap(o: Mapping[str, Any]) -> list[Change]:
        if "blocks_to_swap" not in takes:
            return []
        current = int(o.get("blocks_to_swap") or 0)
        following = next((n for n in SWAP_STEPS if n > current), None)
        if following is None:
            return []
        return [
            Change(
                "blocks_to_swap",
                following,
                msg(
                    "memory.fit.swap",
                    "that many blocks wait in host memory and visit the GPU in turn: slower, same result",
                ),
            )
        ]

    def batch(o: Mapping[str, Any]) -> list[Change]:
        size = int(o.get("train_batch_size") or 1)
        if size <= 1:
            return []
        return [
            Change(
                "train_batch_size",
                max(size // 2, 1),
                msg("memory.fit.batch", "fewer images per step: the same images over more steps"),
            )
        ]

    return [cache_latents, precision, checkpointing, fused, adam8bit, cache_text, adafactor, fp8, swap, batch]


def fit_to_card(command: str, options: Mapping[str, Any], card_bytes: int) -> FitResult:
    """The cheapest changes (in `_steps` order) that make the run's predicted GPU need (allocations, CUDA
    context and slack: `Estimate.card_need`) at most `card_bytes`. Savers that are already on are skipped;
    repeatable ones (block swap, batch) step on while the run still does not fit. Raises PlanError (or
    WeightsUnreadable) when the run cannot be planned at all."""
    family_for(command, options)  # an unknown command says so before the model is read
    before = estimate(command, options, "cuda")
    current = dict(options)
    after = before
    changes: list[Change] = []
    for step in _steps(command, options):
        while after.card_need() > card_bytes:
            proposed = step(current)
            if not proposed:
                break
            for change in proposed:
                current[change.option] = change.value
            changes = [c for c in changes if c.option not in {p.option for p in proposed}] + proposed
            after = estimate(command, current, "cuda")
            if step.__name__ not in ("swap", "batch"):
                break
        if after.card_need() <= card_bytes:
            break
    return FitResult(after.card_need() <= card_bytes, card_bytes, before, after, changes)


__all__ = ["CARD_SIZES_GB", "GB", "PLAN_ERRORS", "Change", "FitResult", "PlanError", "fit_to_card"]
