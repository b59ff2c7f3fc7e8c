"""Option, dataset and network messages in the process language (KOHYA_LANGUAGE=ja, as the Japanese GUI
starts its commands), with their values filled in; the English texts are what the other tests check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend import messages
from backend.data.config import specs_from_args
from backend.data.errors import DatasetError
from backend.networks.args import ArgReader
from backend.options import OptionError, parse_args

from .helpers import MODEL

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def japanese() -> None:
    messages.set_language("ja")  # conftest sets it back


def _problems(argv: list[str]) -> list[str]:
    with pytest.raises(OptionError) as caught:
        parse_args("train_network", [*MODEL, "--output_dir", "out", *argv])
    return caught.value.messages


def test_a_range_refusal_and_its_reason_are_japanese(japanese: None) -> None:
    # The reason was made when the schema was imported (in English here): it is said again in Japanese.
    assert _problems(["--learning_rate", "-1"]) == [
        '"--learning_rate" の値: 0 以上の値を指定してください（指定値: -1.0）（理由: PyTorch のオプティマイザは負の学習率を'
        "拒否する（ValueError: Invalid learning rate）ので、sd-scripts はオプティマイザの作成で失敗します）"
    ]


def test_argparse_refusals_and_unknown_flags_are_japanese(japanese: None) -> None:
    assert _problems(["--learning_rat", "1e-4", "--output_name"]) == [
        '"--output_name" には値が必要です。--output_name VALUE のように書いてください（"-" で始まる値は '
        "--output_name=VALUE と書きます）"
    ]
    assert _problems(["--learning_rat", "1e-4"]) == ['不明なオプション "--learning_rat" です（"--learning_rate" のことですか？）']


def test_dataset_and_network_messages_are_japanese(japanese: None, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"^train_data_dir が存在しません: {tmp_path / 'none'}$"):
        specs_from_args({"train_data_dir": str(tmp_path / "none"), "resolution": "64"})
    with pytest.raises(ValueError, match="^network_args conv_dim='x': 整数を指定してください$"):
        ArgReader({"conv_dim": "x"}).integer("conv_dim")


def test_a_command_started_in_japanese_reports_in_japanese(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('pretrained_model_name_or_path = "m.safetensors"\nlearning_rate = "1e-4"\n', encoding="utf-8")
    command = [sys.executable, "-m", "backend.options", "--check", str(config), "--command", "train_network"]
    env = {**os.environ, messages.LANGUAGE_ENV: "ja"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, encoding="utf-8")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "エラー: 1 件の問題があります:",
        f'  {config}:2: "learning_rate" の値: 数値を指定してください（指定値: "1e-4"、文字列）。引用符を外してください',
    ]
