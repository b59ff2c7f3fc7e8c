"""Runtime messages (errors, warnings, reports) in the user's language.

A message is written where it is produced, in English, under a stable id:

    msg("model.not_found", "--pretrained_model_name_or_path {path}: not found. ...", path=path)

The result is a `Message`: a plain `str` (so it can be appended, joined, raised and compared as
before) in the language of this process, which remembers its id and parameters. The language is
`KOHYA_LANGUAGE` (the GUI sets it for the trainers and tools it starts, and calls `set_language`
for itself); without it messages are English, so logs pasted into bug reports stay readable.

Translations live beside the GUI's in `localizations/<language>.json` under `msg.<id>`. The English
entries there are generated from the `msg(...)` calls in the code (`gui/i18n.py` scans for them),
so the id and the English template must be string literals. Placeholders are `{identifier}`;
other braces are text. Parameters are formatted with `str()`: format numbers before passing them.

Standard library only: the GUI and every tool import this before anything heavy.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path

LANGUAGE_ENV = "KOHYA_LANGUAGE"
LOCALIZATIONS_DIR = Path(__file__).resolve().parents[1] / "localizations"
SOURCE_LANGUAGE = "en"
KEY_PREFIX = "msg."
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

_language: str | None = None  # set_language() wins over the environment


class Message(str):
    """Text in the process language that remembers what it says: `id`, `params` and `english`."""

    id: str
    params: dict[str, object]
    english: str

    def __new__(cls, message_id: str, text: str, english: str, params: dict[str, object]) -> Message:
        obj = super().__new__(cls, text)
        obj.id = message_id
        obj.params = params
        obj.english = english
        return obj

    def __reduce__(self) -> tuple:  # pickles (multiprocessing, DataLoader workers) keep the fields
        return (Message, (self.id, str(self), self.english, self.params))


def fill(template: str, params: dict[str, object]) -> str:
    """`{name}` replaced by `str(params[name])`; an unknown name stays visible rather than raising."""
    return PLACEHOLDER.sub(lambda m: str(params[m[1]]) if m[1] in params else m[0], template)


def set_language(language: str | None) -> None:
    """The language of messages made in this process from now on (None: back to `KOHYA_LANGUAGE`)."""
    global _language
    _language = language


def current_language() -> str:
    return _language or os.environ.get(LANGUAGE_ENV, "").strip() or SOURCE_LANGUAGE


@cache
def _translations(language: str) -> dict[str, str]:
    path = LOCALIZATIONS_DIR / f"{language}.json"
    try:
        with path.open(encoding="utf-8") as file:
            catalogue = json.load(file)
    except (OSError, ValueError):  # an unknown language or a broken catalogue: English, not a crash
        return {}
    return {key[len(KEY_PREFIX):]: text for key, text in catalogue.items() if key.startswith(KEY_PREFIX)}


def msg(message_id: str, template: str, /, **params: object) -> Message:
    """The message `message_id` (English `template`) with `params` filled in, in the process language."""
    return _render(message_id, template, params)


def _render(message_id: str, template: str, params: dict[str, object]) -> Message:
    # A message placed inside another keeps both languages: its English goes into the English text.
    english = fill(template, {k: v.english if isinstance(v, Message) else v for k, v in params.items()})
    language = current_language()
    translated = None if language == SOURCE_LANGUAGE else _translations(language).get(message_id)
    return Message(message_id, english if translated is None else fill(translated, params), english, params)


def relocalized(text: str) -> str:
    """A `Message` made earlier (e.g. a schema text made when its module was imported) in the process
    language of now; any other string as it is. Lets data declared at import follow `set_language`."""
    if not isinstance(text, Message):
        return text
    params = {k: relocalized(v) if isinstance(v, Message) else v for k, v in text.params.items()}
    language = current_language()
    translated = None if language == SOURCE_LANGUAGE else _translations(language).get(text.id)
    return Message(text.id, text.english if translated is None else fill(translated, params), text.english, params)
