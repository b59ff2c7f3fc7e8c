"""`parse_args`: the command line merged with `--config_file`, fully validated.

As in sd-scripts, the config file's values act as defaults and flags given on the command line
override them; with `--output_config` the config file is the file to write, not to read. All
problems (config file, command line, required options, dataset config) come back together.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from backend.messages import msg
from backend.options.config_file import find_config_file, output_config_path, read_config_file
from backend.options.dataset_config import load_dataset_config, subset_kinds_for
from backend.options.errors import OptionError
from backend.options.parser import OptionParser, build_parser
from backend.options.schema import VIDEO_COMMANDS, all_options, derived_values, options_for


def parse_args(command: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Every option of `command` (defaults filled in), or `OptionError` listing all problems."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config_file, output_config = _config_flags(argv, command)
    problems: list[str] = []
    values: dict[str, Any] = {}
    config_path = None
    if config_file is not None and not output_config:
        config_path = find_config_file(config_file)
        if config_path is None:
            problems.append(msg("options.config.not_found", 'config file "{path}" not found', path=config_file))
        else:
            values, problems = read_config_file(config_path, command)
    # A required option may sit in the part of a broken config file that could not be used.
    check_required = not problems
    try:
        namespace, cli_problems = build_parser(command).parse_collecting(argv, argparse.Namespace(**values))
    except OptionError as error:
        raise OptionError(problems + error.messages) from None
    if config_path is not None:
        namespace.config_file = str(config_path)
    problems += cli_problems + _run_problems(namespace, command, check_required)
    if problems:
        raise OptionError(problems)
    # Options of other commands get their defaults, so code shared by the commands can read
    # args.<name> for any declared option (e.g. v2 under the SDXL commands is always False).
    for name, option in all_options().items():
        if not hasattr(namespace, name):
            setattr(namespace, name, option.default)
    for name, value in derived_values(command, vars(namespace)).items():
        setattr(namespace, name, value)
    return namespace


def _config_flags(argv: list[str], command: str) -> tuple[str | None, bool]:
    """--config_file and --output_config, read before the full parse that depends on them."""
    pre = OptionParser(command, add_help=False)
    pre.add_argument("--config_file")
    pre.add_argument("--output_config", action="store_true")
    known, _ = pre.parse_known_args(argv)
    return known.config_file, known.output_config


def _run_problems(namespace: argparse.Namespace, command: str, check_required: bool) -> list[str]:
    """Checks on the merged options as a whole."""
    problems = []
    if namespace.output_config:
        if namespace.config_file is None:
            problems.append(msg(
                "options.output_config.needs_path",
                '"--output_config" needs "--config_file PATH": the file to write the options to',
            ))  # fmt: skip
        elif output_config_path(namespace.config_file).exists():
            path = output_config_path(namespace.config_file)
            problems.append(msg(
                "options.output_config.exists",
                '"--output_config" does not overwrite "{path}"; choose a new --config_file path',
                path=path,
            ))  # fmt: skip
        return problems
    for option in options_for(command).values():
        if check_required and option.required and getattr(namespace, option.name) is None:
            problems.append(msg(
                "options.required", '"{name}" is required: set it in the config file or pass --{name}', name=option.name
            ))
    # train_video's --dataset_config is finetrainers' JSON, which the video data layer reads and checks.
    if getattr(namespace, "dataset_config", None) is not None and command not in VIDEO_COMMANDS:  # not LECO's
        kinds = subset_kinds_for(command, masked_loss=bool(getattr(namespace, "masked_loss", False)))
        try:
            load_dataset_config(namespace.dataset_config, kinds)
        except OptionError as error:
            problems += error.messages
    return problems
