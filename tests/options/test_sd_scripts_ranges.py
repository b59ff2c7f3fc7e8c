"""No range or choice list of ours refuses a value sd-scripts' parsers take, unless a reason is written.

sd-scripts' argparse (and its dataset-config schema) has types and a few choice lists but no
numeric ranges; `backend/options/sd_scripts_types.py` records them. A stricter minimum, maximum
or choice list here must carry `range_reason` (the sd-scripts run-time failure, or the harm).
"""

from __future__ import annotations

import pytest

from backend.data.config import specs_from_dataset_config
from backend.messages import Message
from backend.options import parse_args
from backend.options.dataset_config import load_dataset_config
from backend.options.dataset_keys import DATASET_KEYS, DatasetKey
from backend.options.schema import Option, all_options
from backend.options.sd_scripts_flags import GROUPS, sd_scripts_flags
from backend.options.sd_scripts_types import (
    CHOICES,
    CHOICES_BY_COMMAND,
    DATASET_CHOICES,
    DATASET_KINDS,
    KINDS,
    flag_choices,
    flag_kind,
)
from backend.options.value_warnings import value_warnings
from backend.training.checkpoints import step_save_to_prune

# sd-scripts' kind -> our kinds that take every value it parses.
WIDER_OR_SAME = {
    "bool": {"bool"},
    "int": {"int", "float", "int_or_float"},
    "float": {"float", "int_or_float"},
    "int_or_float": {"int_or_float", "float"},  # our float takes integers too
    "str": {"str", "path"},
    "path": {"str", "path"},
    "str_list": {"str_list"},
    "float_list": {"float_list"},
    "float_pair": {"float_pair"},
    "resolution": {"resolution"},
    "table": {"table"},
}


def sd_scripts_name(option: Option) -> str | None:
    """The sd-scripts flag an option of ours stands for (its name or an older spelling)."""
    return next((name for name in (option.name, *option.aliases) if flag_kind(name) is not None), None)


def stricter_than_sd_scripts(spec: Option | DatasetKey, kind: str, choices: tuple | None) -> list[str]:
    """What of `spec` refuses values sd-scripts' parser takes (kind, range, choices)."""
    found = []
    if spec.kind not in WIDER_OR_SAME[kind]:
        found.append(f"kind {spec.kind} (sd-scripts: {kind})")
    if spec.minimum is not None or spec.maximum is not None:
        found.append(f"range [{spec.minimum}, {spec.maximum}] (sd-scripts: none)")
    if spec.choices is not None and (choices is None or not set(choices) <= set(spec.choices)):
        found.append(f"choices {spec.choices} (sd-scripts: {choices or 'any ' + kind})")
    return found


def test_the_table_covers_every_sd_scripts_flag_once() -> None:
    recorded = [flag for flags in KINDS.values() for flag in flags]
    assert len(recorded) == len(set(recorded))
    assert set(recorded) == {flag for flags in GROUPS.values() for flag in flags}
    assert set(CHOICES) <= set(recorded)
    assert all(set(table) <= set(recorded) for table in CHOICES_BY_COMMAND.values())
    assert set(DATASET_CHOICES) <= set(DATASET_KINDS)


@pytest.mark.parametrize("name", sorted(all_options()))
def test_no_option_is_stricter_than_sd_scripts_without_a_reason(name: str) -> None:
    option = all_options()[name]
    flag = sd_scripts_name(option)
    if flag is None:
        return  # ours alone (ema, preflight): there is no sd-scripts parser to compare with
    problems = [
        f"{command}: {problem}"
        for command in option.commands
        if flag in sd_scripts_flags(command)
        for problem in stricter_than_sd_scripts(option, flag_kind(flag) or "", flag_choices(flag, command))
    ]
    if problems:
        assert option.range_reason.strip(), f"--{name} is stricter than sd-scripts without a range_reason: {problems}"
        assert isinstance(option.range_reason, Message), f"--{name}: write range_reason=msg(...) so it is translated"
    else:
        assert not option.range_reason, f"--{name} has a range_reason but is not stricter than sd-scripts"


@pytest.mark.parametrize("name", sorted(DATASET_KEYS))
def test_no_dataset_key_is_stricter_than_sd_scripts_without_a_reason(name: str) -> None:
    key = DATASET_KEYS[name]
    assert name in DATASET_KINDS, f"{name} is not a key of sd-scripts' dataset config schema"
    problems = stricter_than_sd_scripts(key, DATASET_KINDS[name], DATASET_CHOICES.get(name))
    if problems:
        assert key.range_reason.strip(), f"dataset key {name} is stricter than sd-scripts without a reason: {problems}"
        assert isinstance(key.range_reason, Message), f"dataset key {name}: write the reason as msg(...)"
    else:
        assert not key.range_reason, f"dataset key {name} has a range_reason but is not stricter than sd-scripts"


# --- values sd-scripts takes that used to be refused here ------------------------------------------

GUIDE = [
    "--pretrained_model_name_or_path", "/models/sdxl.safetensors", "--train_data_dir", "/data/train",
    "--output_dir", "/data/out",
]  # fmt: skip


def test_dataset_repeats_0_from_a_published_sdxl_guide_is_accepted(tmp_path) -> None:
    """sd-scripts takes --dataset_repeats=0 (it applies to metadata datasets only); so does the parser here."""
    assert parse_args("sdxl_train_network", [*GUIDE, "--dataset_repeats=0"]).dataset_repeats == 0
    config = tmp_path / "run.toml"
    config.write_text('pretrained_model_name_or_path = "/m.safetensors"\noutput_dir = "/out"\ndataset_repeats = 0\n')
    assert parse_args("train_network", ["--config_file", str(config)]).dataset_repeats == 0


def test_dataset_config_takes_what_sd_scripts_takes(tmp_path) -> None:
    """num_repeats 0 switches a subset off in sd-scripts; "box" is one of its dataset-config filters."""
    config = tmp_path / "data.toml"
    config.write_text(
        "[general]\nresize_interpolation = 'box'\n[[datasets]]\n"
        "  [[datasets.subsets]]\n  image_dir = '/a'\n  num_repeats = 0\n"
        "  [[datasets.subsets]]\n  image_dir = '/b'\n",
        encoding="utf-8",
    )
    loaded = load_dataset_config(config)
    assert [s.params.get("num_repeats") for s in loaded.datasets[0].subsets] == [0, None]
    # A num_repeats the file leaves out comes from --dataset_repeats, as sd-scripts' argparse fallback does.
    specs = specs_from_dataset_config(loaded, {"dataset_repeats": 3, "resolution": "64"})
    assert [s.num_repeats for s in specs[0].subsets] == [0, 3]
    assert {s.resize_interpolation for s in specs[0].subsets} == {"box"}


def test_values_that_do_nothing_here_are_accepted_with_a_warning() -> None:
    def warnings(*argv: str, command: str = "train_network") -> list[str]:
        return value_warnings(parse_args(command, [*GUIDE, *argv]), command)

    assert warnings() == []
    [folders] = warnings("--dataset_repeats", "0")
    assert "--dataset_repeats 0 has no effect" in folders and "10_name" in folders
    [metadata] = warnings("--dataset_repeats", "0", "--in_json", "/data/meta.json")
    assert "switches the --in_json dataset off" in metadata
    assert warnings("--dataset_repeats", "4", "--in_json", "/data/meta.json") == []
    assert "no multires noise" in warnings("--multires_noise_iterations", "0")[0]
    assert "--network_alpha -8 is negative" in warnings("--network_alpha", "-8")[0]
    assert "removes no step saves" in warnings("--save_last_n_steps", "-1")[0]


def test_save_last_n_steps_counts_steps_as_in_sd_scripts() -> None:
    # Saves every 10 steps; at step 50 (sd-scripts' own example): N = 30 removes step 10; 0 keeps only the
    # newest save; a negative N keeps all.
    assert step_save_to_prune(50, 10, 30) == 10
    assert step_save_to_prune(50, 10, 0) == 40
    assert step_save_to_prune(50, 10, -5) is None
    assert step_save_to_prune(50, 10, None) is None
