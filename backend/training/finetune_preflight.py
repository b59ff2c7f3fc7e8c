"""Preflight checks of the fine-tuning commands (fine_tune, train_db, sdxl_train, ...), before a model is loaded.

Collected into the run plan like every other check, so `--preflight` lists all problems at once.
"""

from __future__ import annotations

import argparse
from typing import Protocol

from backend.messages import msg
from backend.training.finetune_files import FOLDER_FORMATS, SINGLE_FILE_FORMATS
from backend.training.fused_backward import FusedStepConfig


class Plan(Protocol):
    command: str
    errors: list[str]
    warnings: list[str]


def check_finetune(args: argparse.Namespace, plan: Plan) -> None:
    _check_data(args, plan)
    _check_rates(args, plan)
    _check_saving(args, plan)
    if getattr(args, "block_lr", None):
        _check_block_lr(args, plan)
    fused = FusedStepConfig.from_args(args).flag
    if fused:
        _check_fused_backward(args, plan, fused)
    if getattr(args, "blocks_to_swap", None) and not fused:
        plan.errors.append(msg(
            "preflight.finetune.blocks_to_swap", "--blocks_to_swap in a fine-tune needs --fused_backward_pass: the "
            "swapped blocks' trained weights are stepped while their block is on the GPU, then written back to RAM "
            "(sd-scripts' flux_train and sd3_train need a fused step there too; a plain step would meet weights in "
            "RAM and gradients on the GPU). Add --fused_backward_pass (Adafactor, AdamW or SGDNesterov, "
            "--gradient_accumulation_steps 1), or remove --blocks_to_swap",
        ))
    if args.no_token_padding:
        plan.warnings.append(msg(
            "preflight.finetune.no_token_padding", "--no_token_padding changes nothing, as in sd-scripts since its "
            "2024 tokenization rewrite: captions are padded to 77 tokens as at inference",
        ))
    if args.diffusers_xformers:
        plan.warnings.append(msg(
            "preflight.finetune.diffusers_xformers", "--diffusers_xformers changes nothing here: attention runs "
            "through PyTorch's SDPA (xformers is not used)",
        ))


def _check_data(args: argparse.Namespace, plan: Plan) -> None:
    # sd-scripts' fine_tune.py reads captions from metadata only; sdxl_train.py also takes
    # DreamBooth-style folders when --in_json is not given.
    if plan.command == "fine_tune" and not args.in_json and not args.dataset_config:
        plan.errors.append(msg(
            "preflight.finetune.needs_metadata", "fine_tune trains on captions from a metadata file: give --in_json "
            "(written by merge_captions_to_metadata / merge_dd_tags_to_metadata / prepare_buckets_latents) with "
            "--train_data_dir, or --dataset_config with metadata_file subsets",
        ))


def _rates(args: argparse.Namespace, command: str) -> list[tuple[str, float | None]]:
    """The text encoders' learning-rate options of `command` and their values."""
    if command in ("fine_tune", "train_db"):
        return [("learning_rate_te", args.learning_rate_te)]
    return [("learning_rate_te1", args.learning_rate_te1), ("learning_rate_te2", args.learning_rate_te2)]


def _check_rates(args: argparse.Namespace, plan: Plan) -> None:
    te_rates = [(name, rate) for name, rate in _rates(args, plan.command) if rate is not None]
    # train_db's switch is --stop_text_encoder_training -1 (options/defs/finetune.py derives train_text_encoder)
    switch = (msg("preflight.finetune.te_switch_db", "--stop_text_encoder_training is negative")
              if plan.command == "train_db" else msg("preflight.finetune.te_switch_off", "--train_text_encoder is off"))
    if not args.train_text_encoder:
        if te_rates:
            names = ", ".join(f"--{name}" for name, _ in te_rates)
            plan.warnings.append(msg("preflight.finetune.te_rates_unused_with", "{flags}: no effect while {switch} (the "
                                     "text encoders stay frozen)", flags=names, switch=switch))
        if args.learning_rate == 0:
            plan.errors.append(msg("preflight.finetune.nothing_to_train_with", "nothing to train: --learning_rate is "
                                   "0 (the U-Net stays frozen) and {switch}", switch=switch))
        return
    encoders_frozen = all((args.learning_rate if rate is None else rate) == 0 for _, rate in _rates(args, plan.command))
    if args.learning_rate == 0 and encoders_frozen:
        plan.errors.append(msg("preflight.finetune.all_rates_zero", "nothing to train: --learning_rate and every "
                               "text-encoder learning rate are 0"))
    if args.cache_text_encoder_outputs or args.cache_text_encoder_outputs_to_disk:
        plan.errors.append(msg(
            "preflight.finetune.text_cache_with_te", "--train_text_encoder cannot be used with "
            "--cache_text_encoder_outputs: cached outputs do not change while the text encoders learn. Turn one of "
            "them off",
        ))


def _check_saving(args: argparse.Namespace, plan: Plan) -> None:
    if args.save_model_as not in SINGLE_FILE_FORMATS + FOLDER_FORMATS:
        plan.errors.append(msg(
            "preflight.finetune.save_format", "--save_model_as {value}: a fine-tuned model is saved as one of "
            "{formats}", value=args.save_model_as, formats=", ".join(SINGLE_FILE_FORMATS + FOLDER_FORMATS),
        ))
    if not args.ema:
        unused = [f"--{name}" for name, default in (("ema_decay", 0.999), ("ema_save", "instead"))
                  if getattr(args, name) != default]
        if unused:
            plan.warnings.append(msg("preflight.finetune.ema_unused", "{flags}: no effect without --ema",
                                     flags=", ".join(unused)))


def _check_fused_backward(args: argparse.Namespace, plan: Plan, flag: str) -> None:
    from backend.training.fused_backward import fused_backward_problems
    from backend.training.optimizers import OptimizerConfig, resolve_optimizer_name
    from backend.training.sharded import launch_backend

    try:
        optimizer = resolve_optimizer_name(OptimizerConfig.from_args(args))
    except ValueError:
        return  # reported by the optimizer checks
    plan.errors += fused_backward_problems(
        optimizer, args.gradient_accumulation_steps, args.mixed_precision,
        sharded=launch_backend() is not None or bool(getattr(args, "deepspeed", False)), flag=flag,
    )


def _check_block_lr(args: argparse.Namespace, plan: Plan) -> None:
    from backend.training.block_lr import parse_block_lrs

    try:
        rates = parse_block_lrs(args.block_lr)
    except ValueError as exc:
        plan.errors.append(str(exc))
        return
    if args.learning_rate == 0:
        plan.warnings.append(msg("preflight.block_lr.unused", "--block_lr: no effect while --learning_rate is 0 (the "
                                 "U-Net is not trained)"))
    elif not any(rates):
        plan.errors.append(msg("preflight.block_lr.all_zero", "--block_lr: every block is at 0, so nothing of the "
                               "U-Net would be trained; set --learning_rate 0 to train only the text encoders"))
