"""What a training command's `main()` calls first: parse, report problems, handle --output_config."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from backend.messages import msg
from backend.options.arguments import parse_args
from backend.options.config_file import output_config_path
from backend.options.errors import OptionError
from backend.options.output import write_config


def print_problems(error: OptionError, file=None) -> None:
    """One line per problem on stderr, under a count so a long list is not mistaken for a crash."""
    file = file or sys.stderr
    count = len(error.messages)
    if count == 1:
        print(msg("options.problems_found_one", "error: 1 problem found:"), file=file)
    else:
        print(msg("options.problems_found", "error: {count} problems found:", count=count), file=file)
    for message in error.messages:
        print(f"  {message}", file=file)


def parse_command_line(command: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`parse_args`, exiting with status 2 on bad options and with 0 after `--output_config`."""
    try:
        namespace = parse_args(command, argv)
    except OptionError as error:
        print_problems(error)
        sys.exit(2)
    if namespace.output_config:
        path = write_config(namespace, command, output_config_path(namespace.config_file))
        print(msg("options.output_config.written", "wrote {path}", path=path))
        sys.exit(0)
    return namespace
