"""--output_config, non_default_options and write_config."""

from __future__ import annotations

import pytest
import toml

from backend.options import non_default_options, parse_args, parse_command_line, write_config

from .helpers import MODEL

pytestmark = pytest.mark.usefixtures("test_options")

WINDOWS_MODEL = ["--pretrained_model_name_or_path", 'C:\\models\\my "best" é.safetensors']


def test_only_values_that_differ_from_defaults():
    args = parse_args(
        "train_network",
        MODEL + ["--v2", "--test_steps", "10", "--test_rate", "0.5", "--test_token", "s3cret"],
    )
    assert non_default_options(args, "train_network") == {
        "pretrained_model_name_or_path": "/models/sd15.safetensors",
        "v2": True,
        "test_rate": 0.5,  # test_steps=10 is the default; the secret is never written
    }


def test_write_config_round_trip(tmp_path):
    argv = WINDOWS_MODEL + ["--v_parameterization", "--test_rate", "1e-05", "--test_lrs", "0.0001", "2e-05"]
    argv += ["--test_args", "conv_dim=8", 'a="b"', "--test_warmup", "0.1", "--test_mode", "slow"]
    args = parse_args("sdxl_train_network", argv + ["--test_sdxl_flag"])
    path = write_config(args, "sdxl_train_network", tmp_path / "sub" / "run.toml")

    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left behind
    tables = toml.load(path)
    assert tables["model"]["v_parameterization"] is True
    assert tables["advanced"] == {"test_mode": "slow", "test_sdxl_flag": True}
    reread = parse_args("sdxl_train_network", ["--config_file", str(path)])
    assert non_default_options(reread, "sdxl_train_network") == non_default_options(
        args, "sdxl_train_network"
    )
    assert reread.pretrained_model_name_or_path == 'C:\\models\\my "best" é.safetensors'


def test_output_config_writes_the_file_and_exits(tmp_path, capsys):
    target = tmp_path / "out"
    with pytest.raises(SystemExit) as exited:
        parse_command_line(
            "train_network", MODEL + ["--test_steps", "3", "--config_file", str(target), "--output_config"]
        )
    assert exited.value.code == 0
    written = tmp_path / "out.toml"  # sd-scripts adds the missing suffix
    assert f"wrote {written}" in capsys.readouterr().out
    assert toml.load(written)["basic"] == {"test_steps": 3}


def test_output_config_needs_a_new_config_file(tmp_path, capsys):
    existing = tmp_path / "run.toml"
    existing.write_text("v2 = true\n")
    for argv in (MODEL + ["--output_config"], MODEL + ["--output_config", "--config_file", str(existing)]):
        with pytest.raises(SystemExit) as exited:
            parse_command_line("train_network", argv)
        assert exited.value.code == 2
    err = capsys.readouterr().err
    assert '"--output_config" needs "--config_file PATH"' in err
    assert f'"--output_config" does not overwrite "{existing}"' in err
    assert existing.read_text() == "v2 = true\n"


def test_bad_options_print_every_problem_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exited:
        parse_command_line("train_network", ["--test_steps", "0", "--nope"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: 3 problems found:",
        '  unknown option "--nope"',
        '  "--test_steps" must be >= 1, got 0',
        '  "pretrained_model_name_or_path" is required: set it in the config file or pass --pretrained_model_name_or_path',
    ]
