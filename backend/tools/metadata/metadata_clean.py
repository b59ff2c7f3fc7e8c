"""The clean-ups of sd-scripts' finetune/clean_captions_and_tags.py, as tables.

Tags (DeepDanbooru/WD14 output, `tag, tag, ...`) go through TAG_RULES in order; captions (BLIP
output) through CAPTION_REPLACEMENTS, each pair applied until the caption no longer changes, in
order. The results are the same as sd-scripts' for the same input, including its plain substring
replacements ("person" also changes inside "personal"), so metadata cleaned here matches
metadata cleaned there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Tags that describe one person, and so contradict each other when there are several people.
_HAIR_LENGTH = re.compile(r"(long|short|medium) hair")
_PER_PERSON = (
    _HAIR_LENGTH,
    re.compile(r"(bob|hime) cut"),
    re.compile(r"[\w\-]+ eyes"),
    re.compile(r"([\w\-]+ sleeves|sleeveless)"),
    re.compile(r"(ponytail|braid|ahoge|twintails|[\w\-]+ bun|single hair bun|single side bun|two side up|"
               r"two tails|[\w\-]+ braid|sidelocks)"),
)
_HAIR = re.compile(r"[\w\-]+ hair")
_SINGLE_WORD = re.compile(r"[\w\-]+|hair ornament")


def _underscores(tags: str) -> str:
    # The ^_^ emoticon is a tag of its own, not an underscore-separated name.
    return tags.replace("^_^", "\0").replace("_", " ").replace("\0", "^_^")


def _drop_rating(tags: str) -> str:
    # DeepDanbooru appends ", rating:safe" (etc.) last; WD14 output has no rating here.
    head, *ratings = tags.split(", rating")
    if len(ratings) > 1:
        logger.info("several rating tags in: %s", tags)
    return head


def _several_people(tags: list[str]) -> bool:
    return any("girls" in t or "boys" in t for t in tags)


def _drop_repeated_per_person(tags: list[str]) -> list[str]:
    if not _several_people(tags):
        return tags
    for pattern in _PER_PERSON:
        if sum(bool(pattern.fullmatch(t)) for t in tags) > 1:
            tags = [t for t in tags if not pattern.fullmatch(t)]
    return tags


def _drop_repeated_hair_colours(tags: list[str]) -> list[str]:
    if not _several_people(tags):
        return tags
    colours = [t for t in tags if _HAIR.fullmatch(t) and not _HAIR_LENGTH.fullmatch(t)]
    return [t for t in tags if t not in colours] if len(colours) > 1 else tags


def _drop_covered_words(tags: list[str]) -> list[str]:
    for word in [t for t in tags if _SINGLE_WORD.fullmatch(t)]:
        longer = re.compile(rf"(\w+ )+{re.escape(word)}")
        if any(longer.fullmatch(t) for t in tags):
            tags = [t for t in tags if t != word]
    return tags


# (what it does, on the text or on the list of tags), applied top to bottom.
TEXT_RULES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("underscores become spaces (long_hair -> long hair), except in ^_^", _underscores),
    ("the rating tag and everything after it are removed (', rating:safe')", _drop_rating),
)
TAG_RULES: tuple[tuple[str, Callable[[list[str]], list[str]]], ...] = (
    ("several people (a tag containing girls/boys): hair length, hair cut, eye colour, sleeves and "
     "hairstyle tags that occur more than once are removed", _drop_repeated_per_person),
    ("several people: hair colour tags are removed when there is more than one", _drop_repeated_hair_colours),
    ("a one-word tag is removed when a longer tag ends with it (shirt beside white shirt)", _drop_covered_words),
)

# (from, to): plain substring replacements, each repeated until nothing changes, top to bottom.
CAPTION_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("anime anime", "anime"),
    ("young ", ""),
    ("anime girl", "girl"),
    ("cartoon female", "girl"),
    ("cartoon lady", "girl"),
    ("cartoon character", "girl"),
    ("cartoon woman", "girl"),
    ("cartoon women", "girls"),
    ("cartoon girl", "girl"),
    ("anime female", "girl"),
    ("anime lady", "girl"),
    ("anime character", "girl"),
    ("anime woman", "girl"),
    ("anime women", "girls"),
    ("lady", "girl"),
    ("female", "girl"),
    ("woman", "girl"),
    ("women", "girls"),
    ("people", "girls"),
    ("person", "girl"),
    ("a cartoon figure", "a figure"),
    ("a cartoon image", "an image"),
    ("a cartoon picture", "a picture"),
    ("an anime cartoon image", "an image"),
    ("a cartoon anime drawing", "a drawing"),
    ("a cartoon drawing", "a drawing"),
    ("girl girl", "girl"),
)


def clean_tags(tags: str) -> str:
    for _, text_rule in TEXT_RULES:
        tags = text_rule(tags)
    tag_list = tags.split(", ")
    for _, tag_rule in TAG_RULES:
        tag_list = tag_rule(tag_list)
    return ", ".join(tag_list)


def clean_caption(caption: str) -> str:
    for old, new in CAPTION_REPLACEMENTS:
        while old in caption:
            caption = caption.replace(old, new)
    return caption
