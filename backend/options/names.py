"""Resolve option names (and old aliases) and explain names that do not resolve.

An unknown name is one of: an option of another command, an sd-scripts flag this trainer does
not implement, or a typo. Each gets its own message, because each needs a different fix.
"""

from __future__ import annotations

import difflib

from backend.options.schema import Option, all_options, options_for
from backend.options.sd_scripts_flags import sd_scripts_commands_for, sd_scripts_flags


def names_for(command: str) -> dict[str, Option]:
    """Every spelling `command` accepts (names and aliases) -> its option."""
    names: dict[str, Option] = {}
    for option in options_for(command).values():
        names[option.name] = option
        names.update(dict.fromkeys(option.aliases, option))
    return names


def _owner(name: str) -> Option | None:
    for option in all_options().values():
        if name == option.name or name in option.aliases:
            return option
    return None


def unknown_name_message(name: str, command: str, prefix: str = "") -> str:
    """Why `name` is not accepted by `command`; `prefix` is "--" for command-line flags."""
    flag = f'"{prefix}{name}"'
    owner = _owner(name)
    if owner is not None:
        return f"{flag} is not accepted by {command}; only {', '.join(owner.commands)} accept it"
    sd_commands = sd_scripts_commands_for(name)
    if command in sd_commands:
        return f"{flag} is an sd-scripts option that this trainer does not implement; remove it"
    if sd_commands:
        return (
            f"{flag} is an sd-scripts option of {', '.join(sd_commands)} only (not {command}), "
            "and this trainer does not implement it; remove it"
        )
    close = difflib.get_close_matches(name, list(names_for(command)), n=1)
    if close:
        return f'unknown option {flag} (did you mean "{prefix}{close[0]}"?)'
    close = difflib.get_close_matches(name, sorted(sd_scripts_flags(command)), n=1)
    if close:
        return (
            f'unknown option {flag} (did you mean "{prefix}{close[0]}"? '
            "That sd-scripts option is not implemented by this trainer)"
        )
    return f"unknown option {flag}"
