"""Warnings for values that sd-scripts accepts, and so do we, but that do nothing or are likely a mistake.

Our ranges follow sd-scripts' parsers (see sd_scripts_types.py): a value sd-scripts takes is taken
here too unless a written reason says why not (`Option.range_reason`). Some of the values taken do
nothing in the run at hand, or do something a user rarely means; preflight lists them (it calls
`value_warnings`) so a command copied from a guide runs, and the user still learns what happens.
"""

from __future__ import annotations

import argparse

from backend.options.schema import LORA_COMMANDS


def value_warnings(args: argparse.Namespace, command: str) -> list[str]:
    warnings: list[str] = []
    repeats = args.dataset_repeats
    if repeats != 1 and not args.in_json and not args.dataset_config:
        warnings.append(
            f"--dataset_repeats {repeats} has no effect here: image folders take their repeats from the folder "
            "name (10_name = 10 repeats); it applies to an --in_json dataset and to --dataset_config subsets "
            "without num_repeats"
        )
    elif repeats < 1 and args.in_json and not args.dataset_config:
        warnings.append(
            f"--dataset_repeats {repeats} switches the --in_json dataset off (as in sd-scripts, a subset with "
            "fewer than 1 repeat is ignored)"
        )
    if args.multires_noise_iterations == 0:
        warnings.append("--multires_noise_iterations 0: no multires noise, the same as leaving it out")
    if command in LORA_COMMANDS and args.network_alpha is not None and args.network_alpha < 0:
        alpha = f"{args.network_alpha:g}"
        warnings.append(
            f"--network_alpha {alpha} is negative, so the LoRA's scale alpha/rank is negative: it trains as "
            f"well as {-args.network_alpha:g} (the learned weights change sign), but the file records "
            f"alpha {alpha}. Write the positive value unless you mean it"
        )
    if args.save_last_n_steps is not None and args.save_last_n_steps < 0:
        warnings.append(
            f"--save_last_n_steps {args.save_last_n_steps}: a negative count removes no step saves, the same as "
            "leaving it out"
        )
    return warnings
