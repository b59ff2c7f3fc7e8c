"""clean_captions_and_tags: each rule of the tables, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.tools.metadata import clean_captions_and_tags
from backend.tools.metadata.metadata_clean import (
    CAPTION_REPLACEMENTS,
    TAG_RULES,
    TEXT_RULES,
    clean_caption,
    clean_tags,
)
from backend.tools.metadata.metadata_io import run_metadata_tool


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        # underscores -> spaces, the ^_^ emoticon kept
        ("long_hair, looking_at_viewer, ^_^", "long hair, looking at viewer, ^_^"),
        # the DeepDanbooru rating and everything after it are dropped
        ("1girl, solo, rating:safe", "1girl, solo"),
        ("1girl, rating:safe, rating:questionable", "1girl"),
        # one person: per-person tags stay even when repeated
        ("1girl, blue eyes, red eyes, blonde hair, black hair", "1girl, blue eyes, red eyes, blonde hair, black hair"),
        # several people: repeated eye colours, lengths, sleeves and hairstyles go; single ones stay
        ("2girls, blue eyes, red eyes, long hair, short hair, ponytail, twintails, smile",
         "2girls, smile"),
        ("multiple boys, long sleeves, sleeveless, bob cut, hime cut, green eyes",
         "multiple boys, green eyes"),
        # several people: more than one hair colour goes, the hair length is kept
        ("2girls, long hair, blonde hair, black hair, smile", "2girls, long hair, smile"),
        ("2girls, long hair, blonde hair", "2girls, long hair, blonde hair"),
        # a one-word tag covered by a longer tag goes
        ("shirt, white shirt, skirt", "white shirt, skirt"),
        ("hair ornament, red hair ornament, x-ray", "red hair ornament, x-ray"),
        ("", ""),
    ],
    ids=["underscores", "rating", "ratings", "one-person", "several-people", "several-boys", "hair-colours",
         "one-hair-colour", "covered-word", "covered-two-words", "empty"],
)
def test_tag_rules(tags: str, expected: str) -> None:
    assert clean_tags(tags) == expected


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("a woman and two women", "a girl and two girls"),
        ("the anime girl with a cartoon character", "the girl with a girl"),
        ("a young lady", "a girl"),
        ("a female person", "a girl"),  # "girl girl" collapses
        ("people in a cartoon drawing", "girls in a drawing"),
        ("anime anime anime woman", "girl"),
        ("a dog on grass", "a dog on grass"),
    ],
)
def test_caption_replacements(caption: str, expected: str) -> None:
    assert clean_caption(caption) == expected


def test_rules_are_described() -> None:
    assert all(isinstance(text, str) and text for text, _ in (*TEXT_RULES, *TAG_RULES))
    assert all(old and old not in new for old, new in CAPTION_REPLACEMENTS)  # each loop ends


def run(*argv: str | Path) -> int:
    return run_metadata_tool(clean_captions_and_tags.main, [str(a) for a in argv])


def test_cli_cleans_every_entry_and_keeps_incomplete_ones(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "in.json"
    source.write_text(json.dumps({
        "a": {"caption": "a woman", "tags": "long_hair, rating:safe", "train_resolution": [64, 64]},
        "b": {"caption": "a dog"},
        "c": {"tags": "shirt, white_shirt"},
    }), encoding="utf-8")
    out = tmp_path / "out.json"
    with caplog.at_level("INFO"):
        assert run(source, out) == 0
    assert json.loads(out.read_text(encoding="utf-8")) == {
        "a": {"caption": "a girl", "tags": "long hair", "train_resolution": [64, 64]},
        "b": {"caption": "a dog"},
        "c": {"tags": "white shirt"},
    }
    assert "2 tags changed, 1 captions changed, 1 without tags, 1 without caption" in caplog.text


def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path / "nope.json", tmp_path / "out.json") == 2
    assert "metadata file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": ["caption"]}', encoding="utf-8")
    assert run(bad, tmp_path / "out.json") == 2
    assert f"{bad} is not a metadata file: the entry 'a' is a list" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
