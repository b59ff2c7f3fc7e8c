"""The one option schema: every training option is declared here once.

Each `Option` carries the sd-scripts flag name, its type, default, choices, range, the commands
that accept it, a GUI group and English help text. The argparse parsers, `--config_file`
validation, the GUI forms, presets, the command builder and translations are all derived from
this table, so adding an option means adding one `declare(...)` call (in a module under
`backend/options/defs/`) plus the code that uses it.

This package must stay importable without torch: the GUI reads it as data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from backend import families

# The commands that take training options (`python -m backend.<command>`), from the families.
LORA_COMMANDS = families.commands("lora")
# DreamBooth (kohya_ss's tab) is the fine-tune method from '<repeats>_<class>' folders: train_db (SD 1.x/2.x) is a
# fine-tune command of its own; the other families' DreamBooth command is their fine-tune command.
DREAMBOOTH_COMMANDS = families.commands("dreambooth")
FINETUNE_COMMANDS = tuple(dict.fromkeys(families.commands("finetune") + DREAMBOOTH_COMMANDS))
# Textual Inversion: new token embeddings trained in the frozen model (train_textual_inversion, sdxl_...).
TEXTUAL_INVERSION_COMMANDS = families.commands("textual_inversion")
ALL_COMMANDS = LORA_COMMANDS + FINETUNE_COMMANDS + TEXTUAL_INVERSION_COMMANDS  # the image trainers (sd-scripts' flags)
# finetrainers' one command for every video family (`--model_name` picks it); its options are declared with
# `commands=VIDEO_COMMANDS` and finetrainers' names, never by default.
VIDEO_COMMANDS = (families.VIDEO_COMMAND,)
# LECO (sd-scripts' train_leco, sdxl_train_leco): a U-Net LoRA from the model's own predictions on a prompt file, no
# images. Not among ALL_COMMANDS: an option reaches them only through their LoRA command (`share_with_leco`, in
# backend/options/defs/leco.py) or by naming them.
LECO_COMMANDS = families.commands("leco")
KNOWN_COMMANDS = ALL_COMMANDS + LECO_COMMANDS + VIDEO_COMMANDS
# The commands where --v2 picks the model type (SD 2.x trains with the SD 1.x commands and --v2).
V2_COMMANDS = families.commands_where(lambda d: bool(d.implied_options.get("v2")))
# The commands of families whose text-encoder outputs can be cached (--cache_text_encoder_outputs).
# Not Textual Inversion's: the text encoders' outputs change every step there (sd-scripts refuses it too).
TEXT_CACHE_COMMANDS = tuple(command for command in families.commands_where(lambda d: d.text_encoder_output_cache)
                            if command not in TEXTUAL_INVERSION_COMMANDS)
# The commands of families whose captions may carry A1111-style weights (--weighted_captions; not Textual Inversion's,
# as in sd-scripts).
WEIGHTED_CAPTION_COMMANDS = tuple(command for command in families.commands_where(lambda d: d.weighted_captions)
                                  if command not in TEXTUAL_INVERSION_COMMANDS)
# The commands by training objective: DDPM's noise/SNR options mean nothing to flow matching and back.
DDPM_COMMANDS = families.commands_where(lambda d: d.objective == "ddpm")
FLOW_MATCHING_COMMANDS = families.commands_where(lambda d: d.objective == "flow_matching")


def commands_taking(name: str) -> tuple[str, ...]:
    """The commands of the families that name option `name` among their own (`own_options`)."""
    return families.commands_where(lambda d: name in d.own_options)


# Value kinds understood by the parser, the TOML validator and the GUI.
#   bool        a store_true flag (TOML: true/false)
#   int, float  numbers, optionally bounded by minimum/maximum
#   str         free text, or one of `choices`
#   path        a file or folder path (GUI shows a picker)
#   int_or_float  a count or a ratio (e.g. lr_warmup_steps: 100 or 0.1)
#   str_list    nargs="*" strings (e.g. network_args "conv_dim=8" "conv_alpha=1")
#   float_list  nargs="*" floats (e.g. text_encoder_lr for two text encoders)
OptionKind = Literal["bool", "int", "float", "str", "path", "int_or_float", "str_list", "float_list"]
OPTION_KINDS: tuple[str, ...] = OptionKind.__args__  # type: ignore[attr-defined]

# GUI groups, in the order the GUI shows them. A new group is added here (and translated).
GROUPS = ("model", "folders", "dataset", "network", "basic", "advanced", "samples", "logging", "saving")


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
    # Why minimum/maximum/choices refuse values sd-scripts' parser takes (it has no ranges): the
    # sd-scripts run-time failure, or the harm here. Required for every stricter range
    # (tests/options/test_sd_scripts_ranges.py walks backend/options/sd_scripts_types.py). Written as
    # msg("options.range_reason.<name>", "...") so the refusal can say it in the user's language.
    range_reason: str = ""
    # Older spellings sd-scripts still accepts (e.g. caption_extention); they map to `name`.
    aliases: tuple[str, ...] = field(default_factory=tuple)
    # Secrets (API keys, tokens) are never written to presets, snapshots or exported commands.
    secret: bool = False
    # The run cannot start without a value (checked after the config file and CLI are merged).
    required: bool = False
    # Only meaningful on the command line (e.g. config_file): rejected inside a config file and
    # not shown as a GUI field or saved in presets.
    cli_only: bool = False
    # Commands whose sd-scripts script parses the flag but does nothing with it (DDPM's noise offset
    # under flow matching): they accept it too, so a config written for sd-scripts runs, and warn
    # that it has no effect (value_warnings.py, saying `ignored_reason`); the GUI does not show it.
    ignored_on: tuple[str, ...] = ()
    ignored_reason: str = ""
    # Why the other commands of sd-scripts' scripts that have the flag refuse it here (said after "only ...
    # accept it"), e.g. --blocks_to_swap: LoRA training only. A msg(...) so it is translated.
    other_commands_reason: str = ""

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
            "range_reason": getattr(self.range_reason, "english", self.range_reason),  # data: English
            "aliases": list(self.aliases),
            "secret": self.secret,
            "required": self.required,
            "cli_only": self.cli_only,
            "ignored_on": list(self.ignored_on),
            "ignored_reason": getattr(self.ignored_reason, "english", self.ignored_reason),
        }


_REGISTRY: dict[str, Option] = {}


def declare(option: Option) -> Option:
    """Register one option; a duplicate name is a programming error, caught at import."""
    if option.name in _REGISTRY:
        raise ValueError(f"option {option.name!r} is declared twice")
    unknown = (set(option.commands) | set(option.ignored_on)) - set(KNOWN_COMMANDS)
    if unknown:
        raise ValueError(f"option {option.name!r} names unknown commands {sorted(unknown)}")
    _check_declaration(option)
    taken = set(_REGISTRY) | {alias for other in _REGISTRY.values() for alias in other.aliases}
    clashes = taken & {option.name, *option.aliases}
    if clashes:
        raise ValueError(f"option {option.name!r}: name or alias {sorted(clashes)} is already taken")
    _REGISTRY[option.name] = option
    return option


def _check_declaration(option: Option) -> None:
    """Catch schema mistakes at import time instead of as odd parser behaviour later."""
    from backend.options.values import check_default

    where = f"option {option.name!r}"
    if option.kind not in OPTION_KINDS:
        raise ValueError(f"{where}: unknown kind {option.kind!r}; expected one of {OPTION_KINDS}")
    if option.group not in GROUPS:
        raise ValueError(f"{where}: unknown group {option.group!r}; add it to GROUPS or use one of {GROUPS}")
    if option.kind == "bool" and option.default is not False:
        raise ValueError(f"{where}: bool options are store_true flags and must default to False")
    if not option.help.strip():
        raise ValueError(f"{where}: help text is required")
    if set(option.ignored_on) & set(option.commands):
        raise ValueError(f"{where}: a command either takes it or ignores it, not both")
    if bool(option.ignored_on) != bool(option.ignored_reason):
        raise ValueError(f"{where}: ignored_on and ignored_reason go together")
    check_default(option)


def declare_all(options: Iterable[Option]) -> None:
    for option in options:
        declare(option)


# Values a command sets from its other options instead of a flag of its own (train_db's text-encoder switch):
# command -> functions of the parsed values returning the derived ones (arguments.parse_args applies them).
_DERIVED: dict[str, list[Callable[[dict[str, Any]], dict[str, Any]]]] = {}


def declare_derived(commands: tuple[str, ...], derive: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    for command in commands:
        _DERIVED.setdefault(command, []).append(derive)


def derived_values(command: str, values: dict[str, Any]) -> dict[str, Any]:
    """What `command` derives from its parsed option values."""
    all_options()  # the definition modules declare the derivations
    found: dict[str, Any] = {}
    for derive in _DERIVED.get(command, []):
        found.update(derive(values))
    return found


# LECO's share of its LoRA command's options: name -> None (taken as the LoRA command takes it) or the reason it
# is accepted and does nothing (sd-scripts' LECO scripts parse it and never read it).
_LECO_SHARED: dict[str, str | None] = {}


def share_with_leco(names: Iterable[str], ignored_reason: str | None = None) -> None:
    """The LECO commands take these options of their family's LoRA command (ignored, with the reason, if given)."""
    for name in names:
        if name in _LECO_SHARED:
            raise ValueError(f"option {name!r} is shared with the LECO commands twice")
        _LECO_SHARED[name] = ignored_reason


def leco_twin(command: str) -> str:
    """The LoRA command of a LECO command's family (train_leco -> train_network)."""
    return families.for_command(command)[0].commands["lora"]


def _leco_shared(command: str, ignored: bool) -> dict[str, Option]:
    """The LoRA command's options a LECO command takes (ignored: those it accepts and does nothing with, also
    where the LoRA command itself ignores them)."""
    twin = leco_twin(command)
    accepted = accepted_options(twin)
    return {name: accepted[name] for name, reason in _LECO_SHARED.items()
            if name in accepted and (reason is not None or twin in accepted[name].ignored_on) == ignored}


def ignored_reason(option: Option, command: str) -> str:
    """Why `command` accepts `option` and does nothing with it ("" when it does something)."""
    if command in option.ignored_on:
        return option.ignored_reason
    if command in LECO_COMMANDS and option.name in _LECO_SHARED:
        twin = leco_twin(command)
        return _LECO_SHARED[option.name] or (option.ignored_reason if twin in option.ignored_on else "")
    return ""


def all_options() -> dict[str, Option]:
    """Every declared option by name (importing the definition modules on first use)."""
    from backend.options import defs  # noqa: F401  (registers the definitions)

    return dict(_REGISTRY)


def options_for(command: str) -> dict[str, Option]:
    if command not in KNOWN_COMMANDS:
        raise ValueError(f"unknown command {command!r}; expected one of {', '.join(KNOWN_COMMANDS)}")
    own = {name: opt for name, opt in all_options().items() if command in opt.commands}
    if command in LECO_COMMANDS:
        return {**_leco_shared(command, ignored=False), **own}
    return own


def accepted_options(command: str) -> dict[str, Option]:
    """What `command`'s parser accepts: its options and those it ignores, as sd-scripts' script does."""
    taken = options_for(command)
    ignored = {name: opt for name, opt in all_options().items() if command in opt.ignored_on}
    if command in LECO_COMMANDS:
        ignored.update(_leco_shared(command, ignored=True))
    return {**taken, **ignored}


def model_types() -> list[dict[str, Any]]:
    """The model types the GUI offers, in its order: the model families' declarations as JSON (name,
    label, the command per training kind, implied option values). The dump carries this list and
    the GUI reads it, so neither lists the families by hand."""
    return families.model_types()
