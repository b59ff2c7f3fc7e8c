"""--config_file: sd-scripts semantics (flattened tables, CLI overrides) with strict validation."""

from __future__ import annotations

import pytest

from backend.options import parse_args

from .helpers import MODEL, problems

pytestmark = pytest.mark.usefixtures("test_options")

GOOD = """\
# sections are only for reading
pretrained_model_name_or_path = "/models/sd15.safetensors"

[model]
v2 = true

[basic]
test_steps = 30
test_rate = 1        # a TOML integer is fine for a float option
test_lrs = [1e-4, 2e-5]
test_warmup = 0.05

[network]
test_args = ["conv_dim=8", "conv_alpha=1"]
test_old_name = "legacy spelling"
"""


def test_tables_are_flattened_and_values_converted(write):
    args = parse_args("train_network", ["--config_file", str(write("run.toml", GOOD))])
    assert args.v2 is True
    assert args.test_steps == 30
    assert args.test_rate == 1.0 and isinstance(args.test_rate, float)
    assert args.test_lrs == [1e-4, 2e-5]
    assert args.test_warmup == pytest.approx(0.05)
    assert args.test_args == ["conv_dim=8", "conv_alpha=1"]
    assert args.test_new_name == "legacy spelling"
    assert args.test_mode == "fast"  # not in the file: the default


def test_command_line_overrides_the_file(write):
    path = write("run.toml", GOOD)
    args = parse_args(
        "train_network", ["--test_steps", "5", "--config_file", str(path), "--test_args", "a=1"]
    )
    assert args.test_steps == 5
    assert args.test_args == ["a=1"]
    assert args.test_rate == 1.0  # from the file
    assert args.config_file == str(path)


def test_path_without_toml_suffix(write):
    path = write("run.toml", GOOD)
    args = parse_args("train_network", ["--config_file", str(path.with_suffix(""))])
    assert args.test_steps == 30 and args.config_file == str(path)


def test_missing_config_file(tmp_path):
    assert problems("train_network", MODEL + ["--config_file", str(tmp_path / "nope")]) == [
        f'config file "{tmp_path / "nope"}" not found'
    ]


def test_unknown_key_names_file_line_and_nearest_option(write):
    path = write("run.toml", GOOD + "\n[more]\ntest_step = 3\n")
    assert problems("train_network", ["--config_file", str(path)]) == [
        f'{path}:18: unknown option "test_step" (did you mean "test_steps"?)'
    ]


def test_refused_sd_scripts_key_names_file_and_line(write):
    path = write("run.toml", GOOD + "dataset_class = 'my.Dataset'\n")
    [message] = problems("train_network", ["--config_file", str(path)])
    assert message.startswith(f'{path}:16: "dataset_class" cannot be used with this trainer: ')


def test_key_of_another_command(write):
    path = write("run.toml", GOOD + "test_sdxl_flag = true\n")
    assert problems("train_network", ["--config_file", str(path)]) == [
        f'{path}:16: "test_sdxl_flag" is not accepted by train_network; '
        "only sdxl_train_network, sdxl_train, flux_train_network, flux_train, sd3_train_network, sd3_train accept it"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('test_steps = "30"', '"test_steps" expects an integer, got "30" (a string); remove the quotes'),
        ("test_steps = 2.5", '"test_steps" expects an integer, got 2.5 (a decimal number)'),
        ("test_steps = [1, 2]", '"test_steps" expects an integer, got [1, 2] (a list); give a single value, not a list'),
        ("test_steps = 0", '"test_steps" must be >= 1, got 0'),
        ("v2 = 1", '"v2" expects true or false, got 1 (an integer)'),
        ('test_mode = "medium"', '"test_mode" must be one of fast, slow; got "medium"'),
        ('test_args = "conv_dim=8"', '"test_args" expects a list of strings, got "conv_dim=8" (a string); write it as a list: ["conv_dim=8"]'),
        ('test_lrs = ["1e-4"]', '"test_lrs" expects a list of numbers, got ["1e-4"] (a list)'),
        ("test_lrs = [-1.0]", '"test_lrs" must be >= 0, got -1.0'),
        ("test_warmup = true", '"test_warmup" expects a number (an integer count or a decimal ratio), got true (a boolean)'),
    ],
)  # fmt: skip
def test_wrong_values_name_option_expectation_and_value(write, line: str, message: str):
    path = write("run.toml", f"pretrained_model_name_or_path = 'm'\n[x]\n{line}\n")
    assert problems("train_network", ["--config_file", str(path)]) == [f"{path}:3: {message}"]


def test_command_line_only_options_are_rejected_in_the_file(write):
    path = write("run.toml", GOOD + 'config_file = "other.toml"\n')
    assert problems("train_network", ["--config_file", str(path)]) == [
        f'{path}:16: "config_file" works only on the command line (--config_file); remove it from the file'
    ]


def test_same_option_in_two_tables(write):
    path = write("run.toml", GOOD + "[again]\ntest_new_name = 'x'\n")
    assert problems("train_network", ["--config_file", str(path)]) == [
        f'{path}:17: "test_new_name" is set twice (first at {path}:15); section names are ignored, so keep one'
    ]


def test_invalid_toml_names_the_line(write):
    path = write("run.toml", 'pretrained_model_name_or_path = "m"\nv2 = tru\n')
    (message,) = problems("train_network", ["--config_file", str(path)])
    assert message.startswith(f"{path}:2: invalid TOML:")


def test_file_and_command_line_problems_come_together(write):
    path = write("run.toml", "pretrained_model_name_or_path = 'm'\ntest_stepz = 1\n")
    found = problems("train_network", ["--config_file", str(path), "--v2x", "--test_steps", "x"])
    assert found == [
        f'{path}:2: unknown option "test_stepz" (did you mean "test_steps"?)',
        'unknown option "--v2x" (did you mean "--v2"?)',
        '"--test_steps" expects an integer, got "x"',
    ]


def test_required_option_may_come_from_the_file(write):
    path = write("run.toml", "[model]\npretrained_model_name_or_path = '/m.safetensors'\n")
    assert (
        parse_args("train_network", ["--config_file", str(path)]).pretrained_model_name_or_path
        == "/m.safetensors"
    )


def test_dataset_config_is_validated_with_the_options(write):
    dataset = write("data.toml", "[[datasets]]\n[[datasets.subsets]]\nnum_repeats = 2\n")
    assert problems("train_network", MODEL + ["--dataset_config", str(dataset)]) == [
        f'{dataset}:2: datasets[0].subsets[0]: missing "image_dir" (folder of training images), '
        "required in a DreamBooth subset (its subsets have no metadata_file)"
    ]
    assert problems("train_network", MODEL + ["--dataset_config", "nope.toml"]) == [
        "nope.toml: dataset config not found"
    ]


def test_mixed_number_list_gets_a_hint(write):
    path = write("run.toml", "pretrained_model_name_or_path = 'm'\ntest_lrs = [1e-4, 2]\n")
    (message,) = problems("train_network", ["--config_file", str(path)])
    assert message.startswith(f"{path}:2: invalid TOML:") and "write 2.0, not 2" in message
