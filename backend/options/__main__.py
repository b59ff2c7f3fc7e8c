"""`python -m backend.options`: the schema as JSON, and config checks for the GUI's preflight.

    python -m backend.options --dump [--command train_network]
    python -m backend.options --check run.toml --command train_network
    python -m backend.options --check_dataset dataset.toml [--command train_network]

Exit status: 0 when valid, 2 when problems were printed (one per line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from backend.messages import msg
from backend.options.arguments import parse_args
from backend.options.cli import print_problems
from backend.options.dataset_config import load_dataset_config, subset_kinds_for
from backend.options.dataset_keys import DATASET_KEYS, SUBSET_KINDS
from backend.options.errors import OptionError
from backend.options.finetrainers_flags import finetrainers_flags
from backend.options.schema import (
    ALL_COMMANDS,
    GROUPS,
    KNOWN_COMMANDS,
    VIDEO_COMMANDS,
    all_options,
    model_types,
    options_for,
)
from backend.options.sd_scripts_flags import sd_scripts_flags

SCHEMA_VERSION = 1


def dump(command: str | None = None) -> dict[str, Any]:
    """The whole schema (or one command's part of it) as JSON-ready data."""
    commands = [command] if command else list(KNOWN_COMMANDS)
    options = options_for(command) if command else all_options()
    return {
        "schema_version": SCHEMA_VERSION,
        "commands": commands,
        "groups": list(GROUPS),
        "options": [option.to_json() for option in options.values()],
        "dataset_keys": [key.to_json() for key in DATASET_KEYS.values()],
        "sd_scripts_flags": {name: sorted(sd_scripts_flags(name)) for name in commands if name in ALL_COMMANDS},
        "finetrainers_flags": {name: sorted(finetrainers_flags()) for name in commands if name in VIDEO_COMMANDS},
        "model_types": model_types(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.options", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--dump", action="store_true", help="print the option schema as JSON")
    action.add_argument("--check", metavar="CONFIG", help="validate a training config TOML (needs --command)")
    action.add_argument("--check_dataset", metavar="FILE", help="validate a dataset config (.toml or .json)")
    parser.add_argument("--command", choices=KNOWN_COMMANDS, help="limit to one training command")
    args = parser.parse_args(argv)

    if args.dump:
        print(json.dumps(dump(args.command), indent=2, ensure_ascii=False))
        return 0
    if args.check and not args.command:
        parser.error("--check needs --command")
    try:
        if args.check:
            parse_args(args.command, ["--config_file", args.check])
        else:
            kinds = subset_kinds_for(args.command) if args.command else SUBSET_KINDS
            load_dataset_config(args.check_dataset, kinds)
    except OptionError as error:
        print_problems(error)
        return 2
    print(msg("options.check_ok", "OK: {path}", path=args.check or args.check_dataset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
