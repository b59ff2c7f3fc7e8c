"""The tools' and the model layer's messages in Japanese: what a user of the Japanese GUI reads when a
tool refuses its input or a model file is damaged (item 21). English is checked everywhere else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend import messages
from backend.models.errors import ModelFileError
from backend.models.file_checks import read_safetensors_header
from backend.tools.cli.arg_checks import output_file
from backend.tools.cli.light_cli import InputError, Summary
from backend.training.progress import parse_progress_line
from tests.end_to_end.helpers import REPO


@pytest.fixture
def japanese() -> None:
    messages.set_language("ja")  # the autouse fixture in tests/conftest.py sets it back


def test_a_damaged_model_file_is_explained_in_japanese(japanese: None, tmp_path: Path) -> None:
    empty = tmp_path / "model.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError) as caught:
        read_safetensors_header(empty)
    assert str(caught.value) == (
        f"{empty}: ファイルが空です（0 バイト）: ダウンロードまたはコピーが完了していません。"
        "対処: もう一度ダウンロードまたはコピーしてください"
    )


def test_a_refused_output_and_a_summary_in_japanese(japanese: None, tmp_path: Path) -> None:
    model = tmp_path / "lora.safetensors"
    model.write_bytes(b"x")
    with pytest.raises(InputError) as caught:
        output_file(model, "--save_to", inputs=[("--model", model)])
    assert str(caught.value) == (
        f"--save_to {model} は --model {model} と同じファイルです: 出力を書き込むと入力が置き換えられます。"
        "--save_to には別の名前を指定してください"
    )
    summary = Summary(written=["a.txt"])
    summary.skip("b.png", "x")
    assert summary.lines() == ["書き込み 1 件、スキップ 1 件、失敗 0 件", "  スキップ: b.png: x"]


def test_a_tool_started_in_japanese_answers_in_japanese(tmp_path: Path) -> None:
    """What the GUI does: KOHYA_LANGUAGE=ja for the tools it starts; the error line and the `error`
    progress event both carry the Japanese text."""
    env = {**os.environ, messages.LANGUAGE_ENV: "ja"}
    missing = tmp_path / "missing.safetensors"
    result = subprocess.run([sys.executable, "-m", "backend.tools.inspect_lora", str(missing)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    expected = f"{missing}: LoRA ファイルが見つかりません。パスを確認してください"
    assert result.stderr == f"error: {expected}\n"
    events = [e for e in map(parse_progress_line, result.stdout.splitlines()) if e]
    assert [e["message"] for e in events if e["event"] == "error"] == [expected]
