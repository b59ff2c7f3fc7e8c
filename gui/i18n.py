"""Translations: one JSON catalogue per language in `localizations/`, keyed by stable ids.

Keys:
    option.<name>.label      short natural-language label (the GUI shows the flag name beside it)
    option.<name>.help       tooltip; in English exactly the schema's help text
    group.<id>               one per `GROUPS` entry
    command.<name>           one per training command
    choice.<option>.<value>  only for choice values that need an explanation
    ui.<id>                  buttons, messages, status texts; `{name}` placeholders are filled by `t()`
    msg.<id>                 runtime messages of the trainer, tools and GUI (`backend/messages.py`)

`localizations/en.json` is the source. Its option help, and the set of option, group and command
keys, are generated from the schema by `build_english_catalogue()`, so English cannot drift from
it; labels, `ui.*` and `choice.*` texts are written by hand in en.json and kept by the generator.
The English `msg.*` texts are generated from the `msg(...)` calls in the code (gui/message_catalogue.py).
After changing options, run `python -m gui.i18n --write` and translate what it lists as missing.

This module stays light (standard library and the option schema): no torch, no gradio.
"""

from __future__ import annotations

import argparse
import json
import locale
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from backend.options.schema import ALL_COMMANDS, GROUPS, all_options
from gui.message_catalogue import english_messages

LOCALIZATIONS_DIR = Path(__file__).resolve().parents[1] / "localizations"
SOURCE_LANGUAGE = "en"
KEY_KINDS = ("ui", "command", "group", "option", "choice", "msg")
# A placeholder is `{identifier}`; other braces (wildcard syntax such as '{a|b}' in help texts) are text.
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Windows reports locales by English name (e.g. 'Japanese_Japan'), POSIX by code ('ja_JP').
_LOCALE_NAMES = {"japanese": "ja", "english": "en"}

log = logging.getLogger(__name__)


def catalogue_path(language: str, directory: Path = LOCALIZATIONS_DIR) -> Path:
    return directory / f"{language}.json"


def load_catalogue(language: str, directory: Path = LOCALIZATIONS_DIR) -> dict[str, str]:
    with catalogue_path(language, directory).open(encoding="utf-8") as file:
        return json.load(file)


def catalogue_text(catalogue: Mapping[str, str]) -> str:
    """The file format, shared by the writer and the up-to-date check so diffs stay minimal."""
    return json.dumps(dict(catalogue), ensure_ascii=False, indent=2) + "\n"


def available_languages(directory: Path = LOCALIZATIONS_DIR) -> list[str]:
    """Languages with a catalogue, English first."""
    others = sorted(path.stem for path in directory.glob("*.json") if path.stem != SOURCE_LANGUAGE)
    return [SOURCE_LANGUAGE, *others]


def default_language(environ: Mapping[str, str] | None = None, directory: Path = LOCALIZATIONS_DIR) -> str:
    """The OS locale's language if a catalogue exists for it ('ja_JP.UTF-8' -> 'ja'), else English.

    POSIX precedence: the first of LC_ALL, LC_MESSAGES, LANG that is set decides. Without any
    (the usual case on Windows) the process locale from `locale.getlocale()` is asked.
    """
    environ = os.environ if environ is None else environ
    name = next((environ[var] for var in ("LC_ALL", "LC_MESSAGES", "LANG") if environ.get(var)), None)
    if name is None:
        try:
            name = locale.getlocale()[0]
        except ValueError:  # a locale Python cannot parse, e.g. LC_CTYPE=UTF-8 on macOS
            name = None
    if not name:
        return SOURCE_LANGUAGE
    code = re.split(r"[_.@-]", name, maxsplit=1)[0].lower()
    code = _LOCALE_NAMES.get(code, code)
    return code if code in available_languages(directory) else SOURCE_LANGUAGE


def missing_keys(language: str, directory: Path = LOCALIZATIONS_DIR) -> list[str]:
    """Keys of the English catalogue that `language` does not translate, in English order."""
    translated = load_catalogue(language, directory)
    return [key for key in load_catalogue(SOURCE_LANGUAGE, directory) if key not in translated]


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def _fill(text: str, fields: Mapping[str, object]) -> str:
    # A field the caller forgot stays visible as '{name}' rather than crashing a GUI callback.
    return PLACEHOLDER.sub(lambda m: str(fields[m[1]]) if m[1] in fields else m[0], text)


class Translator:
    """Looks up texts for one language, falling back to English key by key."""

    def __init__(self, language: str | None = None, directory: Path = LOCALIZATIONS_DIR) -> None:
        language = language or default_language(directory=directory)
        known = available_languages(directory)
        if language not in known:
            raise ValueError(f"unknown language {language!r}; available: {', '.join(known)}")
        self.language = language
        self._english = load_catalogue(SOURCE_LANGUAGE, directory)
        self._texts = self._english if language == SOURCE_LANGUAGE else load_catalogue(language, directory)
        # Keys looked up but not found in this language, so the GUI (or a test) can report them.
        self.missing: set[str] = set()

    def _lookup(self, key: str) -> str | None:
        text = self._texts.get(key)
        if text is None:
            if key not in self.missing:
                self.missing.add(key)
                log.warning("no %s translation for %r; using English", self.language, key)
            text = self._english.get(key)
        return text

    def t(self, key: str, **fields: object) -> str:
        """The text for `key` with `{name}` placeholders filled from `fields`; the key if unknown."""
        text = self._lookup(key)
        return key if text is None else _fill(text, fields)

    def option_label(self, name: str) -> str:
        text = self._lookup(f"option.{name}.label")
        return name if text is None else text

    def option_help(self, name: str) -> str:
        text = self._lookup(f"option.{name}.help")
        return "" if text is None else text

    def group_label(self, group: str) -> str:
        text = self._lookup(f"group.{group}")
        return group if text is None else text

    def command_label(self, command: str) -> str:
        text = self._lookup(f"command.{command}")
        return command if text is None else text

    def choice_label(self, option: str, value: object) -> str:
        """The explained choice where the catalogue has one; most values are shown as they are."""
        key = f"choice.{option}.{value}"
        return self._texts.get(key) or self._english.get(key) or str(value)


def _fallback_label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def build_english_catalogue(written: Mapping[str, str] | None = None) -> dict[str, str]:
    """The English catalogue for the current schema.

    `written` (default: the committed en.json) supplies the hand-written texts: `ui.*`, labels,
    group and command names, choice explanations. Help texts come from the schema and `msg.*` texts
    from the code; keys of options or choices that no longer exist are dropped; a new option gets a
    label made from its name.
    """
    if written is None:
        path = catalogue_path(SOURCE_LANGUAGE)
        written = load_catalogue(SOURCE_LANGUAGE) if path.exists() else {}
    unknown = [key for key in written if key.split(".", 1)[0] not in KEY_KINDS]
    if unknown:
        raise ValueError(f"keys of unknown kind {unknown}; expected prefixes {', '.join(KEY_KINDS)}")

    catalogue = {key: text for key, text in written.items() if key.startswith("ui.")}
    for command in ALL_COMMANDS:
        catalogue[f"command.{command}"] = written.get(f"command.{command}", command)
    for group in GROUPS:
        catalogue[f"group.{group}"] = written.get(f"group.{group}", group.capitalize())
    for name, option in all_options().items():
        label = f"option.{name}.label"
        catalogue[label] = written.get(label, _fallback_label(name))
        catalogue[f"option.{name}.help"] = option.help
        for value in option.choices or ():
            key = f"choice.{name}.{value}"
            if key in written:
                catalogue[key] = written[key]
    for message_id, template in english_messages().items():
        catalogue[f"msg.{message_id}"] = template
    return catalogue


def write_catalogues(directory: Path = LOCALIZATIONS_DIR) -> dict[str, list[str]]:
    """Regenerate en.json; put every other catalogue in English key order, dropping stale keys.

    Returns the keys each other language still lacks (they are not filled with English, so
    `missing_keys` and the tests keep reporting them until translated).
    """
    english = build_english_catalogue(load_catalogue(SOURCE_LANGUAGE, directory))
    catalogue_path(SOURCE_LANGUAGE, directory).write_text(catalogue_text(english), encoding="utf-8")
    missing: dict[str, list[str]] = {}
    for language in available_languages(directory)[1:]:
        texts = load_catalogue(language, directory)
        ordered = {key: texts[key] for key in english if key in texts}
        catalogue_path(language, directory).write_text(catalogue_text(ordered), encoding="utf-8")
        missing[language] = [key for key in english if key not in texts]
    return missing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gui.i18n", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="regenerate en.json and reorder the others")
    action.add_argument("--check", action="store_true", help="exit 1 if en.json is stale or keys are missing")
    args = parser.parse_args(argv)

    if args.write:
        missing = write_catalogues()
    else:
        english = build_english_catalogue()
        if catalogue_text(english) != catalogue_path(SOURCE_LANGUAGE).read_text(encoding="utf-8"):
            print("localizations/en.json is out of date: run python -m gui.i18n --write")
            return 1
        missing = {language: missing_keys(language) for language in available_languages()[1:]}
    for language, keys in missing.items():
        for key in keys:
            print(f"{language}: missing {key}")
    return 1 if args.check and any(missing.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
