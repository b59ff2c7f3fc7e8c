"""Why a key is not accepted where it is written in a dataset config, and what to do instead.

sd-scripts answers every such case with voluptuous' "extra keys not allowed @ data[...]"; each
message here names the key, says what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib

from backend.messages import msg
from backend.options.dataset_keys import CONTROLNET, DATASET_KEYS, DREAMBOOTH, GENERAL, RENAMED, SUBSET
from backend.options.schema import all_options
from backend.options.sd_scripts_flags import sd_scripts_commands_for


def kind_label(kind: str) -> str:
    """A subset kind as users call it ("DreamBooth"), in the process language."""
    if kind == DREAMBOOTH:
        return "DreamBooth"  # names, the same in every language
    if kind == CONTROLNET:
        return "ControlNet"
    return msg("dataset.kind.fine_tuning", "fine-tuning")


def kind_labels(kinds: tuple[str, ...]) -> str:
    """The kinds a key applies to (one or two): "DreamBooth and fine-tuning"."""
    if len(kinds) == 2:
        return msg("dataset.kind.pair", "{first} and {second}", first=kind_label(kinds[0]), second=kind_label(kinds[1]))
    return kind_list(kinds)


def kind_list(kinds: tuple[str, ...]) -> str:
    """The kinds accepted somewhere: "DreamBooth, fine-tuning"."""
    return ", ".join(kind_label(k) for k in kinds)


def top_level_problem(key: str) -> str:
    """A key outside [general] and [[datasets]]."""
    if key in DATASET_KEYS:
        return msg(
            "dataset.key.at_top_level",
            '"{key}" must be inside [general] or a [[datasets]] table, not at the top level',
            key=key,
        )
    close = difflib.get_close_matches(key, ["general", "datasets"], n=1)
    if close:
        return msg(
            "dataset.key.unknown_top_level_close",
            'unknown top-level key "{key}" (did you mean "{close}"?); the file holds [general] and [[datasets]] tables',
            key=key, close=close[0],
        )  # fmt: skip
    return msg(
        "dataset.key.unknown_top_level",
        'unknown top-level key "{key}"; the file holds [general] and [[datasets]] tables',
        key=key,
    )


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
            return msg(
                "dataset.key.not_in_subset",
                '"{key}" belongs to a [[datasets]] table or [general], not a subset; move it up',
                key=key,
            )
        if level == GENERAL:
            return msg(
                "dataset.key.not_in_general",
                '"{key}" belongs to a [[datasets.subsets]] table, not [general]; move it into each subset',
                key=key,
            )
        return msg(
            "dataset.key.not_in_dataset",
            '"{key}" belongs to a [[datasets.subsets]] table, not a [[datasets]] table; move it into each subset',
            key=key,
        )
    if set(spec.subset_kinds) & set(kinds):
        return None
    if key == "conditioning_data_dir" and level == SUBSET and DREAMBOOTH in accepted:
        return _masks_problem(accepted)
    given = {"key": key, "labels": kind_labels(spec.subset_kinds), "kind": kind_label(kinds[0]), "why": why}
    if level == GENERAL:
        return msg(
            "dataset.key.kind_not_accepted",
            '"{key}" applies only to {labels} subsets, which are not accepted here (accepted: {accepted})',
            accepted=kind_list(accepted), **given,
        )  # fmt: skip
    if level == SUBSET and why:
        return msg(
            "dataset.key.other_kind_subset_because",
            '"{key}" applies only to {labels} subsets; this subset is {kind} ({why})',
            **given,
        )
    if level == SUBSET:
        return msg(
            "dataset.key.other_kind_subset", '"{key}" applies only to {labels} subsets; this subset is {kind}', **given
        )
    if why:
        return msg(
            "dataset.key.other_kind_dataset_because",
            '"{key}" applies only to {labels} subsets; this dataset is {kind} ({why})',
            **given,
        )
    return msg(
        "dataset.key.other_kind_dataset", '"{key}" applies only to {labels} subsets; this dataset is {kind}', **given
    )


def _masks_problem(accepted: tuple[str, ...]) -> str:
    """conditioning_data_dir (sd-scripts' ControlNet subsets: loss masks) where the dataset cannot be one."""
    if CONTROLNET not in accepted:
        return msg(
            "dataset.key.masks_need_masked_loss",
            '"conditioning_data_dir" (loss masks) is read only with --masked_loss, as in sd-scripts: add '
            "masked_loss = true to the training options, or remove the key",
        )
    return msg(
        "dataset.key.masks_in_every_subset",
        '"conditioning_data_dir" must be set in every subset of the dataset or in none (as in sd-scripts, a '
        "dataset is masked only when all its subsets are); put the subsets without masks in a [[datasets]] table "
        "of their own",
    )  # fmt: skip


def _unknown(key: str, level: str, kinds: tuple[str, ...]) -> str:
    if key == "reg_data_dir":
        return msg(
            "dataset.key.reg_data_dir",
            '"reg_data_dir" is the command-line name; in a dataset config write image_dir with is_reg = true',
        )
    if key in RENAMED:
        return msg(
            "dataset.key.command_line_name",
            '"{key}" is the command-line name; in a dataset config write {name}',
            key=key, name=RENAMED[key],
        )  # fmt: skip
    if key == "subsets":
        return msg("dataset.key.subsets", '"subsets" belongs to a [[datasets]] table: write [[datasets.subsets]]')
    if key in all_options() or sd_scripts_commands_for(key):
        return msg(
            "dataset.key.training_option",
            '"{key}" is a training option, not a dataset key; set it in the --config_file TOML or on the command line',
            key=key,
        )
    # Prefer keys that fit here; a key that fits elsewhere then gets its own placement message.
    here = [n for n, s in DATASET_KEYS.items() if level in s.levels and set(s.subset_kinds) & set(kinds)]
    close = difflib.get_close_matches(key, here, n=1) or difflib.get_close_matches(
        key, list(DATASET_KEYS), n=1
    )
    if close:
        return msg("dataset.key.unknown_close", 'unknown key "{key}" (did you mean "{close}"?)', key=key, close=close[0])
    return msg("dataset.key.unknown", 'unknown key "{key}"', key=key)
