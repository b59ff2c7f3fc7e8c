"""Warnings for values that sd-scripts accepts, and so do we, but that do nothing or are likely a mistake.

Our ranges follow sd-scripts' parsers (see sd_scripts_types.py): a value sd-scripts takes is taken
here too unless a written reason says why not (`Option.range_reason`). Some of the values taken do
nothing in the run at hand, or do something a user rarely means; preflight lists them (it calls
`value_warnings`) so a command copied from a guide runs, and the user still learns what happens.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from backend.messages import msg
from backend.options.schema import LORA_COMMANDS, accepted_options, all_options, ignored_reason


def value_warnings(args: argparse.Namespace, command: str) -> list[str]:
    warnings: list[str] = []
    repeats = args.dataset_repeats
    if repeats != 1 and not args.in_json and not args.dataset_config:
        warnings.append(msg(
            "options.warning.dataset_repeats_unused",
            "--dataset_repeats {repeats} has no effect here: image folders take their repeats from the folder name "
            "(10_name = 10 repeats); it applies to an --in_json dataset and to --dataset_config subsets without "
            "num_repeats",
            repeats=repeats,
        ))  # fmt: skip
    elif repeats < 1 and args.in_json and not args.dataset_config:
        warnings.append(msg(
            "options.warning.dataset_repeats_off",
            "--dataset_repeats {repeats} switches the --in_json dataset off (as in sd-scripts, a subset with fewer "
            "than 1 repeat is ignored)",
            repeats=repeats,
        ))  # fmt: skip
    if args.multires_noise_iterations == 0 and command not in all_options()["multires_noise_iterations"].ignored_on:
        warnings.append(msg(
            "options.warning.multires_noise_off",
            "--multires_noise_iterations 0: no multires noise, the same as leaving it out",
        ))  # fmt: skip
    if command in LORA_COMMANDS and args.network_alpha is not None and args.network_alpha < 0:
        warnings.append(msg(
            "options.warning.negative_network_alpha",
            "--network_alpha {alpha} is negative, so the LoRA's scale alpha/rank is negative: it trains as well as "
            "{positive} (the learned weights change sign), but the file records alpha {alpha}. Write the positive "
            "value unless you mean it",
            alpha=f"{args.network_alpha:g}", positive=f"{-args.network_alpha:g}",
        ))  # fmt: skip
    if args.save_last_n_steps is not None and args.save_last_n_steps < 0:
        warnings.append(msg(
            "options.warning.negative_save_last_n_steps",
            "--save_last_n_steps {count}: a negative count removes no step saves, the same as leaving it out",
            count=args.save_last_n_steps,
        ))  # fmt: skip
    for name in ("ddp_gradient_as_bucket_view", "ddp_static_graph"):
        if getattr(args, name, False):
            warnings.append(msg(
                "options.warning.ddp_wrapper",
                "--{name} changes nothing here: it tunes PyTorch's DistributedDataParallel wrapper, and the processes "
                "here average their gradients without one (one all-reduce per step)",
                name=name,
            ))  # fmt: skip
    thumbnail = getattr(args, "metadata_thumbnail", None)
    if thumbnail and not thumbnail.startswith("data:") and not Path(thumbnail).is_file():
        warnings.append(msg(
            "options.warning.thumbnail_missing",
            "--metadata_thumbnail {path}: no such file, so the saved models get no thumbnail (as in sd-scripts)",
            path=thumbnail,
        ))  # fmt: skip
    return warnings + ignored_option_warnings(args, command)


def ignored_option_warnings(args: argparse.Namespace, command: str) -> list[str]:
    """One warning per option set away from its default that `command` accepts but ignores (`ignored_on`)."""
    warnings: list[str] = []
    for name, option in accepted_options(command).items():
        reason = ignored_reason(option, command)
        if not reason:
            continue
        value = getattr(args, name, option.default)
        default = list(option.default) if isinstance(option.default, tuple) else option.default
        if value != default:
            warnings.append(msg(
                "options.warning.ignored",
                "--{name} has no effect on {command}: {reason}. sd-scripts' {command} ignores it too; remove it",
                name=name, command=command, reason=reason,
            ))  # fmt: skip
    return warnings
