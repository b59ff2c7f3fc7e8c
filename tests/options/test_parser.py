"""Parsers built from the schema, and command-line problems."""

from __future__ import annotations

import pytest

from backend.options import build_parser, parse_args

from .helpers import MODEL, problems

pytestmark = pytest.mark.usefixtures("test_options")


def test_values_are_converted_by_kind():
    args = parse_args(
        "train_network",
        MODEL
        + ["--v2", "--test_steps", "20", "--test_rate", "3e-4", "--test_mode", "slow"]
        + ["--test_args", "conv_dim=8", "conv_alpha=1", "--test_lrs", "1e-4", "2e-5"]
        + ["--test_warmup", "100", "--test_old_name", "x"],
    )
    assert args.v2 is True and args.v_parameterization is False
    assert args.test_steps == 20
    assert args.test_rate == pytest.approx(3e-4)
    assert args.test_mode == "slow"
    assert args.test_args == ["conv_dim=8", "conv_alpha=1"]
    assert args.test_lrs == [1e-4, 2e-5]
    assert args.test_warmup == 100 and isinstance(args.test_warmup, int)
    assert args.test_new_name == "x"  # the alias lands on the option's name
    assert parse_args("train_network", MODEL + ["--test_warmup", "0.1"]).test_warmup == pytest.approx(0.1)
    assert parse_args("train_network", MODEL + ["--test_rate=5"]).test_rate == 5.0


def test_defaults_fill_every_option():
    args = parse_args("train_network", MODEL)
    assert args.test_steps == 10 and args.test_mode == "fast" and args.test_args is None
    assert args.config_file is None and args.dataset_config is None


def test_build_parser_is_a_plain_argparse_parser():
    parser = build_parser("sdxl_train_network")
    help_text = parser.format_help()
    assert "--pretrained_model_name_or_path" in help_text and "--v2 " not in help_text
    assert parser.parse_args(["--v_parameterization"]).v_parameterization is True


def test_all_value_problems_are_reported_together():
    found = problems(
        "train_network",
        MODEL + ["--test_steps", "ten", "--test_rate", "-1", "--test_mode", "Slow", "--test_lrs", "1", "x"],
    )
    assert found == [
        '"--test_steps" expects an integer, got "ten"',
        '"--test_rate" must be >= 0, got -1.0',
        '"--test_mode" must be one of fast, slow; got "Slow" (did you mean "slow"?)',
        '"--test_lrs" expects a number, got "x"',
    ]


def test_unknown_flag_suggests_the_nearest_option():
    assert problems("train_network", MODEL + ["--v_paramterization"]) == [
        'unknown option "--v_paramterization" (did you mean "--v_parameterization"?)'
    ]


def test_prefixes_are_not_accepted():
    # argparse would silently take --v_param for --v_parameterization.
    assert problems("train_network", MODEL + ["--v_param"])[0].startswith('unknown option "--v_param"')


def test_unknown_flag_value_is_not_reported_twice():
    assert problems("train_network", MODEL + ["--foo=1", "--bar", "2", "3"]) == [
        'unknown option "--foo"',
        'unknown option "--bar"',
    ]


def test_sd_scripts_flag_that_is_not_implemented():
    # every flag of the SD commands is taken now; FLUX.1's --split_mode (deprecated in sd-scripts) is not
    assert problems("flux_train_network", MODEL + ["--split_mode"]) == [
        '"--split_mode" is an sd-scripts option that this trainer does not implement; remove it'
    ]


def test_sd_scripts_flag_that_cannot_mean_anything_here_is_refused_with_the_reason():
    [message] = problems("train_network", MODEL + ["--dataset_class", "my.Dataset"])
    assert message.startswith('"--dataset_class" cannot be used with this trainer: ')
    assert "--dataset_config" in message


def test_sd_scripts_flag_of_another_script():
    message = problems("train_network", MODEL + ["--cache_text_encoder_outputs"])[0]
    assert "sdxl_train_network, sdxl_train, flux_train_network, flux_train, sd3_train_network, sd3_train only" in message
    assert "(not train_network)" in message


def test_typo_of_an_unimplemented_sd_scripts_flag():
    message = problems("train_network", MODEL + ["--learning_rat", "1e-4"])[0]
    assert message.startswith('unknown option "--learning_rat" (did you mean "--learning_rate"?')
    assert "not implemented" in message


def test_option_of_another_command():
    assert problems("sdxl_train_network", MODEL + ["--v2"]) == [
        '"--v2" is not accepted by sdxl_train_network; only train_network, fine_tune, train_db, train_textual_inversion '
        "accept it. It reads the model as SD 2.x, which the SD 1.x/2.x commands train; an SDXL, FLUX.1 or SD 3.5 "
        "model has no v2 (sd-scripts' SDXL scripts refuse it too)"
    ]
    message = problems("train_network", MODEL + ["--test_sdxl_flag"])[0]
    assert "only sdxl_train_network, sdxl_train, flux_train_network, flux_train, sd3_train_network, sd3_train accept it" in message


def test_value_given_to_an_on_off_flag():
    assert problems("train_network", MODEL + ["--v2", "true"]) == [
        'unexpected argument "true" (on/off flags take no value: give the flag to turn it on)'
    ]


def test_missing_flag_value_is_an_option_error():
    # argparse's own "argument --tokenizer_cache_dir: expected one argument", in our words (and translatable).
    assert problems("train_network", MODEL + ["--tokenizer_cache_dir"]) == [
        '"--tokenizer_cache_dir" needs a value: write --tokenizer_cache_dir VALUE '
        '(a value that starts with "-" as --tokenizer_cache_dir=VALUE)'
    ]


def test_value_given_to_an_on_off_flag_is_said_in_our_words():
    assert problems("train_network", MODEL + ["--v2=true"]) == [
        '"--v2" is an on/off flag and takes no value (got \'true\'): give --v2 alone to turn it on, '
        "leave it out to keep it off"
    ]


def test_required_option():
    assert problems("train_network", []) == [
        '"pretrained_model_name_or_path" is required: set it in the config file '
        "or pass --pretrained_model_name_or_path"
    ]
