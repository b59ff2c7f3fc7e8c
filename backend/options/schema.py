"""The one option schema: every training option is declared here once.

Each `Option` carries the sd-scripts flag name, its type, default, choices, range, the commands
that accept it, a GUI group and English help text. The argparse parsers, `--config_file`
validation, the GUI forms, presets, the command builder and translations are all derived from
this table, so adding an option means adding one `declare(...)` call (in a module under
`backend/options/defs/`) plus the code that uses it.

This package must stay importable without torch: the GUI reads it as data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

# The commands that take training options (`python -m backend.<command>`).
LORA_COMMANDS = ("train_network", "sdxl_train_network")
FINETUNE_COMMANDS = ("fine_tune", "sdxl_train")
SDXL_COMMANDS = ("sdxl_train_network", "sdxl_train")
SD_COMMANDS = ("train_network", "fine_tune")
ALL_COMMANDS = LORA_COMMANDS + FINETUNE_COMMANDS

# Value kinds understood by the parser, the TOML validator and the GUI.
#   bool        a store_true flag (TOML: true/false)
#   int, float  numbers, optionally bounded by minimum/maximum
#   str         free text, or one of `choices`
#   path        a file or folder path (GUI shows a picker)
#   int_or_float  a count or a ratio (e.g. lr_warmup_steps: 100 or 0.1)
#   str_list    nargs="*" strings (e.g. network_args "conv_dim=8" "conv_alpha=1")
#   float_list  nargs="*" floats (e.g. text_encoder_lr for two text encoders)
OptionKind = Literal["bool", "int", "float", "str", "path", "int_or_float", "str_list", "float_list"]


@dataclass(frozen=True)
class Option:
    name: str
    kind: OptionKind
    default: Any
    help: str
    group: str
    commands: tuple[str, ...] = ALL_COMMANDS
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    # Older spellings sd-scripts still accepts (e.g. caption_extention); they map to `name`.
    aliases: tuple[str, ...] = field(default_factory=tuple)
    # Secrets (API keys, tokens) are never written to presets, snapshots or exported commands.
    secret: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "default": self.default,
            "help": self.help,
            "group": self.group,
            "commands": list(self.commands),
            "choices": list(self.choices) if self.choices is not None else None,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "aliases": list(self.aliases),
            "secret": self.secret,
        }


_REGISTRY: dict[str, Option] = {}


def declare(option: Option) -> Option:
    """Register one option; a duplicate name is a programming error, caught at import."""
    if option.name in _REGISTRY:
        raise ValueError(f"option {option.name!r} is declared twice")
    unknown = set(option.commands) - set(ALL_COMMANDS)
    if unknown:
        raise ValueError(f"option {option.name!r} names unknown commands {sorted(unknown)}")
    _REGISTRY[option.name] = option
    return option


def declare_all(options: Iterable[Option]) -> None:
    for option in options:
        declare(option)


def all_options() -> dict[str, Option]:
    """Every declared option by name (importing the definition modules on first use)."""
    from backend.options import defs  # noqa: F401  (registers the definitions)

    return dict(_REGISTRY)


def options_for(command: str) -> dict[str, Option]:
    if command not in ALL_COMMANDS:
        raise ValueError(f"unknown command {command!r}; expected one of {', '.join(ALL_COMMANDS)}")
    return {name: opt for name, opt in all_options().items() if command in opt.commands}
