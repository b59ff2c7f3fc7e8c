"""The schema catches declaration mistakes at import time."""

from __future__ import annotations

import pytest

from backend.options.schema import GROUPS, Option, all_options, declare, options_for


def test_every_option_is_well_formed():
    for option in all_options().values():
        assert option.group in GROUPS
        assert option.help.strip()
        assert option.to_json()["name"] == option.name


def test_model_and_config_options_are_declared():
    names = set(options_for("train_network"))
    assert {"pretrained_model_name_or_path", "v2", "v_parameterization", "tokenizer_cache_dir"} <= names
    assert {"config_file", "output_config", "dataset_config"} <= names
    assert "v2" not in options_for("sdxl_train_network")
    assert all_options()["pretrained_model_name_or_path"].required
    assert all_options()["config_file"].cli_only


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (Option("test_bad_group", "int", 1, "h", "nowhere"), "unknown group"),
        (Option("test_bad_kind", "number", 1, "h", "basic"), "unknown kind"),  # type: ignore[arg-type]
        (Option("test_true_flag", "bool", True, "h", "basic"), "default to False"),
        (Option("test_no_help", "int", 1, " ", "basic"), "help text"),
        (Option("test_bad_choice", "str", "c", "h", "basic", choices=("a", "b")), "must be one of a, b"),
        (Option("test_low", "int", 0, "h", "basic", minimum=1), "must be >= 1"),
        (Option("test_alias", "bool", False, "h", "basic", aliases=("v2",)), "already taken"),
        (Option("v2", "bool", False, "h", "model"), "declared twice"),
    ],
)
@pytest.mark.usefixtures("test_options")
def test_declare_rejects_mistakes(option: Option, message: str):
    with pytest.raises(ValueError, match=message):
        declare(option)
    assert option.name not in all_options() or option.name == "v2"
