"""Help texts shown as written.

Gradio renders a component's `info` through a small Markdown subset (gradio's frontend, `info-text`):
`code` in backticks, [text](url) links, **bold** / __bold__ and *emphasis* / _emphasis_, with no
backslash escapes. Help texts are plain text full of formulas and file patterns
("loss*(SNR+1)/SNR*value", "huber_scale*exp(...)", "'<image>_sd.npz'"), and that renderer ate
their asterisks. `plain_info` turns the characters that start such markup into look-alikes the
renderer leaves alone, so the text reads exactly as written. Pure string handling.
"""

from __future__ import annotations

import re

# Look-alikes: U+2217 ASTERISK OPERATOR, U+02CB MODIFIER LETTER GRAVE ACCENT, U+02CD MODIFIER LETTER LOW MACRON
# (drawn like an underscore);
# U+2060 WORD JOINER (invisible) keeps "](" from being read as a link.
ASTERISK, BACKTICK, LOW_LINE, JOINER = "\u2217", "\u02cb", "\u02cd", "\u2060"
# Gradio's emphasis rules for underscores (JavaScript's \w is ASCII only): __x__ and _x_ that is not
# inside a word. Underscores inside words (flag names such as cache_latents) are never touched.
_WORD = "[A-Za-z0-9_]"
_UNDERSCORE_MARKUP = (re.compile(r"__(.+?)__"), re.compile(rf"(?<!{_WORD})_(.+?)_(?!{_WORD})"))


def _replace_underscore_pairs(line: str) -> str:
    for pattern in _UNDERSCORE_MARKUP:
        while (match := pattern.search(line)) is not None:
            start, end = match.span()
            inner_start, inner_end = match.span(1)
            opening = LOW_LINE * (inner_start - start)
            closing = LOW_LINE * (end - inner_end)
            line = line[:start] + opening + match.group(1) + closing + line[end:]
    return line


def plain_info(text: str) -> str:
    """`text` so that Gradio's `info` rendering shows it literally (line breaks are kept)."""
    text = text.replace("*", ASTERISK).replace("`", BACKTICK).replace("](", "]" + JOINER + "(")
    return "\n".join(_replace_underscore_pairs(line) for line in text.split("\n"))


def render_like_gradio(text: str) -> str:
    """What Gradio's `info` renderer makes of `text` (a port of its regexes), for tests."""
    html = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    html = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', html)
    html = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html)
    html = re.sub(r"__(.+?)__", r"<strong>\1</strong>", html)
    html = re.sub(r"\*(.+?)\*", r"<em>\1</em>", html)
    html = re.sub(rf"(?<!{_WORD})_(.+?)_(?!{_WORD})", r"<em>\1</em>", html)
    return html.replace("\n", "<br>")
