"""Why a key is not accepted where it is written in a dataset config, and what to do instead.

sd-scripts answers every such case with voluptuous' "extra keys not allowed @ data[...]"; each
message here names the key, says what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib

from backend.options.dataset_keys import DATASET_KEYS, GENERAL, KIND_LABELS, RENAMED, SUBSET
from backend.options.schema import all_options
from backend.options.sd_scripts_flags import sd_scripts_commands_for


def top_level_problem(key: str) -> str:
    """A key outside [general] and [[datasets]]."""
    if key in DATASET_KEYS:
        return f'"{key}" must be inside [general] or a [[datasets]] table, not at the top level'
    close = difflib.get_close_matches(key, ["general", "datasets"], n=1)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    return f'unknown top-level key "{key}"{hint}; the file holds [general] and [[datasets]] tables'


def placement_problem(
    key: str, level: str, kinds: tuple[str, ...], accepted: tuple[str, ...], why: str
) -> str | None:
    """None when `key` may be written at `level` ("subset", "dataset" or "general").

    `kinds` are the subset kinds the table applies to (the dataset's kind, or every `accepted`
    kind for [general]); `why` says how the dataset's kind was inferred.
    """
    spec = DATASET_KEYS.get(key)
    if spec is None:
        return _unknown(key, level, kinds)
    if level not in spec.levels:
        if level == SUBSET:
            return f'"{key}" belongs to a [[datasets]] table or [general], not a subset; move it up'
        here = "[general]" if level == GENERAL else "a [[datasets]] table"
        return f'"{key}" belongs to a [[datasets.subsets]] table, not {here}; move it into each subset'
    if set(spec.subset_kinds) & set(kinds):
        return None
    labels = " and ".join(KIND_LABELS[k] for k in spec.subset_kinds)
    if level == GENERAL:
        names = ", ".join(KIND_LABELS[k] for k in accepted)
        return f'"{key}" applies only to {labels} subsets, which are not accepted here (accepted: {names})'
    because = f" ({why})" if why else ""
    return f'"{key}" applies only to {labels} subsets; this {level} is {KIND_LABELS[kinds[0]]}{because}'


def _unknown(key: str, level: str, kinds: tuple[str, ...]) -> str:
    if key in RENAMED:
        return f'"{key}" is the command-line name; in a dataset config write {RENAMED[key]}'
    if key == "subsets":
        return '"subsets" belongs to a [[datasets]] table: write [[datasets.subsets]]'
    if key in all_options() or sd_scripts_commands_for(key):
        return (
            f'"{key}" is a training option, not a dataset key; '
            "set it in the --config_file TOML or on the command line"
        )
    # Prefer keys that fit here; a key that fits elsewhere then gets its own placement message.
    here = [n for n, s in DATASET_KEYS.items() if level in s.levels and set(s.subset_kinds) & set(kinds)]
    close = difflib.get_close_matches(key, here, n=1) or difflib.get_close_matches(
        key, list(DATASET_KEYS), n=1
    )
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    return f'unknown key "{key}"{hint}'
