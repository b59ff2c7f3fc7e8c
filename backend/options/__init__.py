"""Training options: the schema, the parsers built from it, config and dataset-config loading.

Public API (standard library + `toml` only; the GUI imports this package):

    parse_args(command, argv=None) -> argparse.Namespace      CLI + --config_file, validated
    parse_command_line(command, argv=None) -> Namespace       same; prints problems and exits
    build_parser(command) -> argparse.ArgumentParser
    OptionError                                               .messages: list[str]
    non_default_options(namespace, command) -> dict
    write_config(namespace, command, path) -> Path
    load_dataset_config(path, kinds=...) -> DatasetGroupConfig
    Option, declare, all_options, options_for                 the schema itself
"""

from backend.options.arguments import parse_args
from backend.options.cli import parse_command_line
from backend.options.dataset_config import (
    DatasetConfig,
    DatasetGroupConfig,
    SubsetConfig,
    load_dataset_config,
    subset_kinds_for,
    validate_dataset_config,
)
from backend.options.errors import OptionError
from backend.options.output import non_default_options, write_config
from backend.options.parser import build_parser
from backend.options.schema import Option, all_options, declare, options_for

__all__ = [
    "DatasetConfig",
    "DatasetGroupConfig",
    "Option",
    "OptionError",
    "SubsetConfig",
    "all_options",
    "build_parser",
    "declare",
    "load_dataset_config",
    "non_default_options",
    "options_for",
    "parse_args",
    "parse_command_line",
    "subset_kinds_for",
    "validate_dataset_config",
    "write_config",
]
