"""finetrainers' options -> the namespace the shared training rooms read (sd-scripts' names).

The video command trains with the image trainer's rooms (backend/training: accelerator, method,
optimizer, scheduler, loop, saves, resume), which read typed slices of an sd-scripts-named namespace.
This module builds that namespace: the defaults of the image command of the same kind and objective
(a flow-matching LoRA or fine-tune command, so every slice finds its fields), then every finetrainers
option under its own name (a video family's slices may read them), then the sd-scripts names the
finetrainers options mean. Nothing here loads a model.

What finetrainers means, in sd-scripts' terms:
- `--lr` x (`--gradient_accumulation_steps` x `--batch_size` x processes with `--scale_lr`) -> learning_rate;
  `--optimizer adam|adamw` (+ `--use_8bit_bnb`) with `--beta1 --beta2 --weight_decay --epsilon` -> the
  optimizer and its arguments; `--lr_num_cycles` / `--lr_power` -> the scheduler's;
- `--checkpointing_steps N` -> a LoRA/model and a training state every N steps; `--checkpointing_limit K` ->
  the K newest states kept (outputs.py names them as finetrainers does);
- `--precompute_conditions` / `--enable_precomputation` -> latents and text-encoder outputs computed once before
  training into `--precomputation_dir` (reused while valid, video/precomputed.py), then the VAE and text
  encoders leave the device;
- `--training_type lora` -> the PEFT-layout LoRA (video/network.py) with `--rank`, `--lora_alpha`,
  `--target_modules`; `full-finetune` -> the transformer's own weights;
- the flow-matching options keep finetrainers' names: the video families' objectives read them
  (backend/objectives/finetrainers_flow.py).
"""

from __future__ import annotations

import argparse
from typing import Any

from backend import families
from backend.options import parse_args
from backend.options.schema import FINETUNE_COMMANDS, FLOW_MATCHING_COMMANDS, LORA_COMMANDS, all_options

NETWORK_MODULE = "video.peft_lora"  # backend/networks/loader.py's name for video/network.py
TRAIN_STEPS_DEFAULT = all_options()["train_steps"].default


def template_command(lora: bool) -> str:
    """The image command whose option set the rooms read for this kind of video run."""
    kind = LORA_COMMANDS if lora else FINETUNE_COMMANDS
    return next(c for c in FLOW_MATCHING_COMMANDS if c in kind)


def _optimizer(args: argparse.Namespace) -> tuple[str, list[str]]:
    """finetrainers' --optimizer (adam, adamw, their bitsandbytes forms; --use_8bit_bnb of v0.0.x)."""
    name = str(args.optimizer or "adam").lower()
    adamw = name.startswith("adamw")
    eight_bit = name.endswith("-8bit") or bool(getattr(args, "use_8bit_bnb", False))
    bnb = eight_bit or name.endswith("-bnb")
    if bnb:
        optimizer = f"bitsandbytes.optim.{'AdamW' if adamw else 'Adam'}{'8bit' if eight_bit else ''}"
    else:
        optimizer = "AdamW" if adamw else "Adam"
    betas = f"({args.beta1},{args.beta2})"
    return optimizer, [f"betas={betas}", f"weight_decay={args.weight_decay}", f"eps={args.epsilon}"]


# finetrainers' --transformer_dtype -> the precision the shared rooms compute in (fp8: stored, bf16 compute).
PRECISIONS = {"bf16": "bf16", "fp16": "fp16", "fp32": "no", "float8_e4m3fn": "bf16", "float8_e5m2": "bf16"}


def run_length(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """(max_train_steps, max_train_epochs): v0.0.x's --train_epochs counts unless --train_steps was changed
    from its default too (in v0.0.x a given --train_steps overrides the epochs)."""
    epochs = getattr(args, "train_epochs", None)
    if epochs and args.train_steps == TRAIN_STEPS_DEFAULT:
        return None, epochs
    return args.train_steps, None


def learning_rate(args: argparse.Namespace, processes: int) -> float:
    rate = float(args.lr)
    if getattr(args, "scale_lr", False):  # as finetrainers: lr x accumulation x batch x processes
        rate *= args.gradient_accumulation_steps * args.batch_size * processes
    return rate


def internal_namespace(args: argparse.Namespace, processes: int, resume: str | None) -> argparse.Namespace:
    """The namespace the training rooms read for this finetrainers run (`resume`: the state folder)."""
    lora = args.training_type == "lora"
    template = template_command(lora)
    internal = parse_args(template, ["--pretrained_model_name_or_path", args.pretrained_model_name_or_path,
                                     "--output_dir", args.output_dir])
    values: dict[str, Any] = dict(vars(internal))
    values.update(vars(args))
    optimizer, optimizer_args = _optimizer(args)
    every = args.checkpointing_steps
    limit = args.checkpointing_limit
    precompute = bool(args.enable_precomputation or args.precompute_conditions)
    steps, epochs = run_length(args)
    values.update(
        train_batch_size=args.batch_size,
        max_train_steps=steps,
        max_train_epochs=epochs,
        learning_rate=learning_rate(args, processes),
        optimizer_type=optimizer,
        optimizer_args=optimizer_args,
        lr_scheduler_num_cycles=args.lr_num_cycles,
        lr_scheduler_power=args.lr_power,
        max_data_loader_n_workers=args.dataloader_num_workers,
        persistent_data_loader_workers=False,
        mixed_precision=PRECISIONS[args.transformer_dtype],
        # finetrainers trains a full fine-tune's weights in --transformer_dtype itself (no float32 master copy):
        # sd-scripts' --full_bf16 / --full_fp16. (A LoRA's own weights stay float32, as the image trainer's.)
        full_bf16=not lora and args.transformer_dtype == "bf16",
        full_fp16=not lora and args.transformer_dtype == "fp16",
        no_half_vae=args.vae_dtype == "fp32",  # the VAE in float32; other --vae_dtype: the compute dtype (preflight)
        # finetrainers' layerwise upcasting: the frozen transformer's weights (alone) stored in fp8 (fp8_weights.py).
        fp8_base=False,
        fp8_base_unet="transformer" in (args.layerwise_upcasting_modules or ())
        or args.transformer_dtype.startswith("float8"),
        save_every_n_steps=every,
        save_every_n_epochs=None,
        save_state=bool(every),
        save_state_on_train_end=False,
        # outputs.py keeps every LoRA save; this prunes the states beyond the newest `limit`.
        save_last_n_steps=(limit - 1) * every if every and limit else None,
        resume=resume,
        cache_latents=precompute,
        cache_latents_to_disk=False,
        cache_text_encoder_outputs=precompute,
        cache_text_encoder_outputs_to_disk=precompute,  # in --precomputation_dir (run_setup: text_cache_dir)
        log_with=None if args.report_to == "none" else args.report_to,
        log_tracker_name=args.tracker_name,
        save_model_as="safetensors" if lora else "diffusers_safetensors",
        save_precision=None,
        sample_prompts=None,
        sample_every_n_steps=args.validation_steps,
        sample_every_n_epochs=getattr(args, "validation_epochs", None),
        sample_at_first=False,
        dataset_config=None,
        train_data_dir=None,
        no_metadata=False,
    )
    if lora:
        targets = args.target_modules or []
        values.update(
            network_module=NETWORK_MODULE, network_dim=args.rank, network_alpha=float(args.lora_alpha),
            network_args=[f"target_modules={' '.join(targets)}"], network_train_unet_only=True,
            network_weights=None, dim_from_weights=False,
        )
    return argparse.Namespace(**values)


def video_family(model_name: str) -> families.FamilyDeclaration | None:
    """The family finetrainers' `--model_name` names (None: no video family of that name here)."""
    return next((d for d in families.DECLARATIONS if d.video_model_name == model_name), None)
