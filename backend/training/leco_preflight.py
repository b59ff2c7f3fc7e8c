"""Preflight of the LECO commands (train_leco, sdxl_train_leco): the prompt file read and checked before any model
loads (every problem listed), and the flags sd-scripts' LECO scripts refuse or cannot honour.

Decisions: --max_train_epochs is refused (LECO counts steps only; sd-scripts' docs say so, and its scripts loop
on --max_train_steps alone); --network_train_text_encoder_only is refused as sd-scripts refuses it.
"""

from __future__ import annotations

import argparse

from backend.messages import msg
from backend.training.leco_prompts import PromptFileError, load_prompt_settings
from backend.training.plan_view import PlanView


def check_leco(args: argparse.Namespace, plan: PlanView) -> None:
    if args.max_train_epochs:
        plan.errors.append(msg(
            "preflight.leco.epochs", "--max_train_epochs {value}: LECO counts steps only (it has no dataset to go "
            "through, as in sd-scripts' LECO scripts); give --max_train_steps instead", value=args.max_train_epochs))
    if args.network_train_text_encoder_only:
        plan.errors.append(msg(
            "preflight.leco.text_encoder_only", "--network_train_text_encoder_only: LECO trains a U-Net LoRA only "
            "(sd-scripts refuses it too); remove it"))
    try:
        settings = load_prompt_settings(args.prompts_file)
    except PromptFileError as exc:
        plan.errors += exc.problems
        return
    plan.report["leco"] = {"prompts_file": str(args.prompts_file), "settings": len(settings)}
