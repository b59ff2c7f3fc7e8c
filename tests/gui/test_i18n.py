"""Translation catalogues: complete for every option, in sync with the schema, faithful in Japanese."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from backend.options.schema import ALL_COMMANDS, GROUPS, all_options
from gui import i18n
from gui.i18n import Translator

REPO = Path(__file__).resolve().parents[2]
EN = i18n.load_catalogue("en")
JA = i18n.load_catalogue("ja")
# Keys whose English text is a proper noun that Japanese writes the same way.
SAME_IN_JAPANESE = {"ui.model_type.sd1", "ui.model_type.sd2", "ui.model_type.sdxl", "ui.tensorboard",
                    "ui.model_type.flux_dev", "ui.model_type.flux_schnell", "ui.model_type.chroma",
                    "ui.model_type.sd3_medium", "ui.model_type.sd3_large", "ui.tab.dreambooth", "ui.tab.leco",
                    "msg.leco.prompts.problem"}  # the last: "{path}: {where}: {text}"
JAPANESE_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
FLAG = re.compile(r"--[A-Za-z][A-Za-z0-9_]*")
# What a translation must carry over verbatim: key=value examples, dotted names and file names
# (networks.lora, '<image>_sd.npz', .safetensors), flags, snake_case names and numbers.
TECHNICAL = re.compile(
    r"[A-Za-z_]\w*=[^\s,;)（）、。\"]+"
    r"|[\w<>/-]*\.[A-Za-z]\w+(?:\.[A-Za-z]\w+)*"
    r"|--[A-Za-z][A-Za-z0-9_]*"
    r"|\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b"
    r"|(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?(?!\w)",
    re.ASCII,  # so that a number or name directly beside Japanese text is still one token
)


def technical_tokens(text: str) -> Counter[str]:
    # A sentence's full stop is not part of the token before it.
    return Counter(token.rstrip(".") for token in TECHNICAL.findall(text))


def help_keys() -> list[str]:
    return [key for key in EN if key.endswith(".help")]


def verbatim_keys() -> list[str]:
    """Texts whose flags, names and numbers a translation must keep: help texts and runtime messages."""
    return [*help_keys(), *(key for key in EN if key.startswith("msg."))]


def test_every_option_has_label_and_help_in_both_languages() -> None:
    for name in all_options():
        for language, catalogue in (("en", EN), ("ja", JA)):
            for part in ("label", "help"):
                text = catalogue.get(f"option.{name}.{part}", "")
                assert text.strip(), f"{language}: option {name} has no {part}"


def test_groups_and_commands_are_named() -> None:
    expected = {f"group.{group}" for group in GROUPS} | {f"command.{command}" for command in ALL_COMMANDS}
    assert expected <= EN.keys()
    assert expected <= JA.keys()


def test_english_help_is_the_schema_help() -> None:
    for name, option in all_options().items():
        assert EN[f"option.{name}.help"] == option.help


def test_committed_english_catalogue_is_what_the_schema_generates() -> None:
    generated = i18n.catalogue_text(i18n.build_english_catalogue(EN))
    committed = i18n.catalogue_path("en").read_text(encoding="utf-8")
    assert committed == generated, "localizations/en.json is stale: run python -m gui.i18n --write"


def test_japanese_has_exactly_the_english_keys() -> None:
    assert i18n.missing_keys("ja") == []
    assert sorted(JA.keys() - EN.keys()) == []


def test_japanese_is_translated_not_copied() -> None:
    untranslated = [
        key for key, text in JA.items() if key not in SAME_IN_JAPANESE and not JAPANESE_SCRIPT.search(text)
    ]
    assert untranslated == []
    assert all(JA[key] == EN[key] for key in SAME_IN_JAPANESE), "allowlisted keys should stay proper nouns"


@pytest.mark.parametrize("key", sorted(EN))
def test_placeholders_match(key: str) -> None:
    assert i18n.placeholders(JA[key]) == i18n.placeholders(EN[key])


def test_flags_in_english_help_appear_in_japanese_help() -> None:
    problems = {key: sorted(set(FLAG.findall(EN[key])) - set(FLAG.findall(JA[key]))) for key in verbatim_keys()}
    assert {key: flags for key, flags in problems.items() if flags} == {}


def test_japanese_help_keeps_names_code_and_numbers_verbatim() -> None:
    # Counted, so a number that appears twice in English cannot lose one occurrence unnoticed.
    problems = {key: dict(technical_tokens(EN[key]) - technical_tokens(JA[key])) for key in verbatim_keys()}
    assert {key: lost for key, lost in problems.items() if lost} == {}


def test_no_placeholder_like_text_hides_in_help() -> None:
    # Help texts are shown as they are; a `{name}` there would be filled (or look unfilled) by t().
    assert [key for key in help_keys() if i18n.placeholders(EN[key])] == []


def test_translator_formats_fields_and_falls_back_to_english(tmp_path: Path) -> None:
    (tmp_path / "en.json").write_text(json.dumps({"ui.a": "A {x}", "ui.b": "B"}), encoding="utf-8")
    (tmp_path / "ja.json").write_text(json.dumps({"ui.a": "エー {x}"}), encoding="utf-8")
    translator = Translator("ja", directory=tmp_path)
    assert translator.t("ui.a", x=1) == "エー 1"
    assert translator.t("ui.a") == "エー {x}"
    assert translator.t("ui.b") == "B"
    assert translator.t("ui.nowhere") == "ui.nowhere"
    assert translator.missing == {"ui.b", "ui.nowhere"}
    assert i18n.missing_keys("ja", directory=tmp_path) == ["ui.b"]


def test_translator_on_the_real_catalogues() -> None:
    ja = Translator("ja")
    assert ja.option_label("learning_rate") == "学習率"
    assert "--keep_tokens" in ja.option_help("shuffle_caption")
    assert ja.t("ui.unknown_preset_keys", keys="foo, bar") == "プリセットに不明なキーがあります: foo, bar"
    assert ja.group_label("network") == JA["group.network"]
    assert ja.command_label("sdxl_train") == JA["command.sdxl_train"]
    assert ja.choice_label("mixed_precision", "no") == JA["choice.mixed_precision.no"]
    assert ja.choice_label("mixed_precision", "bf16") == "bf16"
    assert ja.missing == set()
    en = Translator("en")
    assert en.option_help("clip_skip") == all_options()["clip_skip"].help
    assert en.option_label("not_an_option") == "not_an_option"


def test_braces_that_are_not_placeholders_stay_as_written() -> None:
    assert "'{a|b|c}'" in Translator("ja").option_help("enable_wildcard")
    assert Translator("en").t("option.enable_wildcard.help", a=1) == EN["option.enable_wildcard.help"]


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="available: en, ja"):
        Translator("xx")


def test_available_languages() -> None:
    assert i18n.available_languages() == ["en", "ja"]


@pytest.mark.parametrize(
    ("environ", "system", "expected"),
    [
        ({"LANG": "ja_JP.UTF-8"}, None, "ja"),
        ({"LC_ALL": "ja_JP.eucJP", "LANG": "en_US.UTF-8"}, None, "ja"),
        ({"LC_ALL": "en_US.UTF-8", "LANG": "ja_JP.UTF-8"}, None, "en"),
        ({"LC_MESSAGES": "ja_JP", "LANG": "C"}, None, "ja"),
        ({"LANG": "C.UTF-8"}, "ja_JP", "en"),
        ({"LANG": "de_DE.UTF-8"}, None, "en"),
        ({}, "Japanese_Japan", "ja"),  # Windows
        ({}, "ja_JP", "ja"),
        ({}, "English_United States", "en"),
        ({}, None, "en"),
    ],
)
def test_default_language_follows_the_os_locale(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], system: str | None, expected: str
) -> None:
    monkeypatch.setattr(i18n.locale, "getlocale", lambda *args: (system, None))
    assert i18n.default_language(environ) == expected


def test_default_language_survives_an_unparsable_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    def unparsable(*args: object) -> tuple[str, str]:
        raise ValueError("unknown locale: UTF-8")

    monkeypatch.setattr(i18n.locale, "getlocale", unparsable)
    assert i18n.default_language({}) == "en"


def test_check_command_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gui.i18n", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_reports_keys_of_unknown_kind() -> None:
    with pytest.raises(ValueError, match="labels.x"):
        i18n.build_english_catalogue({**EN, "labels.x": "typo"})


def test_new_options_get_keys_and_removed_ones_lose_them() -> None:
    stale = {key: text for key, text in EN.items() if key != "option.seed.label"}
    stale["option.gone_option.label"] = "Gone"
    stale["choice.mixed_precision.gone"] = "Gone"
    rebuilt = i18n.build_english_catalogue(stale)
    assert rebuilt["option.seed.label"] == "Seed"
    assert "option.gone_option.label" not in rebuilt
    assert "choice.mixed_precision.gone" not in rebuilt


def test_module_imports_neither_torch_nor_gradio() -> None:
    code = (
        "import json, sys, gui.i18n; print(json.dumps([m for m in ('torch', 'gradio') if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
