"""Runtime messages: English by default, the process language when set, ids found in the code."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from backend import messages
from backend.messages import Message, msg
from gui import message_catalogue
from gui.message_catalogue import MessageScanError, english_messages

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def catalogues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "ja.json").write_text(json.dumps({"msg.demo.hello": "こんにちは {name}"}), encoding="utf-8")
    monkeypatch.setattr(messages, "LOCALIZATIONS_DIR", tmp_path)
    messages._translations.cache_clear()
    yield tmp_path
    messages._translations.cache_clear()


def test_english_by_default_and_a_plain_string() -> None:
    text = msg("demo.hello", "hello {name}, {missing} stays", name="Ann")
    assert text == "hello Ann, {missing} stays"
    assert isinstance(text, str) and isinstance(text, Message)
    assert (text.id, text.params, text.english) == ("demo.hello", {"name": "Ann"}, text)
    assert str(ValueError(text)) == text


def test_the_process_language_translates(catalogues: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    messages.set_language("ja")
    text = msg("demo.hello", "hello {name}", name="Ann")
    assert text == "こんにちは Ann" and text.english == "hello Ann"
    assert msg("demo.other", "not translated") == "not translated"  # falls back to English
    messages.set_language(None)
    monkeypatch.setenv(messages.LANGUAGE_ENV, "ja")  # what the GUI gives the trainers it starts
    assert msg("demo.hello", "hello {name}", name="Bo") == "こんにちは Bo"
    monkeypatch.setenv(messages.LANGUAGE_ENV, "xx")  # a language without a catalogue: English
    assert msg("demo.hello", "hello {name}", name="Bo") == "hello Bo"


def test_a_message_survives_pickling() -> None:
    text = pickle.loads(pickle.dumps(msg("demo.hello", "hello {name}", name="Ann")))
    assert (text, text.id, text.params) == ("hello Ann", "demo.hello", {"name": "Ann"})


def test_scanner_finds_literal_calls_and_refuses_others(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text('msg("a.b", "one {x}", x=1)\nmessages.msg("a.c", "two")\nmsg("a.b", "one {x}", x=2)\n')
    assert english_messages([good], repo=tmp_path) == {"a.b": "one {x}", "a.c": "two"}
    for body, problem in (
        ('msg("a.b", f"one {x}")', "literal"),
        ('msg("A b", "x")', "dotted lower-case"),
        ('msg("a.b", "one")\nmsg("a.b", "two")', "two texts"),
    ):
        bad = tmp_path / "bad.py"
        bad.write_text(body + "\n")
        with pytest.raises(MessageScanError, match=problem):
            english_messages([bad], repo=tmp_path)


def test_every_message_in_the_code_is_in_the_english_catalogue() -> None:
    english = json.loads((REPO / "localizations" / "en.json").read_text(encoding="utf-8"))
    found = {f"msg.{key}": text for key, text in english_messages().items()}
    assert {key: english.get(key) for key in found} == found
    assert sorted(key for key in english if key.startswith("msg.") and key not in found) == []
    assert list(message_catalogue.source_files())  # the scan looks somewhere


def test_module_is_light() -> None:
    code = "import sys, backend.messages, gui.message_catalogue; print([m for m in ('torch','gradio') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_nested_message_keeps_its_english(catalogues: Path) -> None:
    (catalogues / "ja.json").write_text(
        json.dumps({"msg.demo.outer": "外 {inner}", "msg.demo.inner": "内 {n}"}), encoding="utf-8"
    )
    messages._translations.cache_clear()
    messages.set_language("ja")
    outer = msg("demo.outer", "outer {inner}", inner=msg("demo.inner", "inner {n}", n=1))
    assert (outer, outer.english) == ("外 内 1", "outer inner 1")
    messages.set_language(None)
    assert messages.relocalized(outer) == "outer inner 1"
    messages.set_language("ja")
    assert messages.relocalized(messages.relocalized(outer)) == "外 内 1"
