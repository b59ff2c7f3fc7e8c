"""Helpers shared by the option tests."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from backend.options import OptionError, parse_args
from backend.options.schema import TEXT_CACHE_COMMANDS, Option

CORE_OPTIONS = (
    "pretrained_model_name_or_path",
    "v2",
    "v_parameterization",
    "tokenizer_cache_dir",
    "config_file",
    "output_config",
    "dataset_config",
)
MODEL = ["--pretrained_model_name_or_path", "/models/sd15.safetensors"]

TEST_OPTIONS = [
    Option("test_steps", "int", 10, "Steps.", "basic", minimum=1),
    Option("test_rate", "float", 1e-4, "Rate.", "basic", minimum=0),
    Option("test_mode", "str", "fast", "Mode.", "advanced", choices=("fast", "slow")),
    Option("test_args", "str_list", None, "Args.", "network"),
    Option("test_lrs", "float_list", None, "Rates.", "basic", minimum=0),
    Option("test_warmup", "int_or_float", 0, "Warm-up.", "basic", minimum=0),
    Option("test_token", "str", None, "A secret.", "logging", secret=True),
    Option("test_sdxl_flag", "bool", False, "SDXL only.", "advanced", commands=TEXT_CACHE_COMMANDS),
    Option("test_new_name", "str", None, "Renamed.", "dataset", aliases=("test_old_name",)),
]


def problems(command: str, argv: Sequence[str]) -> list[str]:
    with pytest.raises(OptionError) as caught:
        parse_args(command, list(argv))
    return caught.value.messages
