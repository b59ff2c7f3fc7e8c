"""Runtime text in Markdown, shown as written.

The GUI's messages are `gr.Markdown`: headings, bullets, tables and code we write on purpose, with
values in them that come from elsewhere (paths, the trainer's and tools' messages, preflight and
import reports, file names). Gradio renders Markdown with marked (GitHub flavour), then a sanitizer
that drops unknown HTML elements with their content, then KaTeX for `$$...$$`. A value such as
"copy it to <folder>/openai_clip-vit-large-patch14" lost everything from `<folder>` on; `*.safetensors`,
`__init__`, `C:\\_data`, `[a](b)`, `|` or `&lt;` changed too. Every value goes through `md_escape` (or
`md_code` / `md_code_block` when it is shown as code) where it enters Markdown; our own Markdown
does not. Helpers return `Markdown` (a `str`), which is never escaped again.

What `md_escape` does, for marked as Gradio 6 configures it:
- CommonMark backslash escapes for the characters that start inline markup anywhere (\\ ` * [ ] < & | ~ $),
  for `_` unless it sits between two letters or digits (`cache_latents` stays as it is: such an
  underscore can neither open nor close emphasis); `%%` as `&#37;` (Gradio swaps its LaTeX
  placeholders `%%%LATEX_BLOCK_n%%%` back into the rendered HTML, where escapes are gone);
- autolinks are broken up (`:` of `://`, `@`, the dot of `www.`), because marked shows backslashes
  inside an autolink as they are;
- at the start of the value, the characters that would begin a block (`#`, `>`, `+`, `-`, `=`, `1. `,
  `1)`, indentation);
- line breaks become `<br>`: gr.Markdown joins lines otherwise, and the value stays on one source
  line, so it can sit in a list item or a table cell without ending it; the indentation of a line
  and runs of spaces keep their width (`&nbsp;`), which HTML would fold into one space.
Inside code (`md_code`, `md_code_block`) nothing can be escaped: the fence is made longer than any run
of backticks in the text instead.
Pure string handling; tested against a CommonMark renderer (tests/gui/test_markdown_text.py) and, in
a browser, against Gradio itself (tests/gui/test_browser_form.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gui.i18n import Translator

ALWAYS = frozenset("\\`*[]<&|~$")
BLOCK_START = frozenset("#>+-=")
LINE_BREAK = "<br>"
NBSP = "&nbsp;"
_SPACES = re.compile(r" {2,}")
_ORDERED = re.compile(r"\d{1,9}(?=[.)](?:[ \t]|$))")  # "1. " / "1)" would begin an ordered list ("1.5" not)
_BACKTICKS = re.compile(r"`+")


class Markdown(str):
    """Text that is Markdown already (made here): `md_escape` leaves it as it is."""


def _escaped_char(text: str, index: int) -> str:
    char = text[index]
    before = text[index - 1] if index else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    if char in ALWAYS:
        return "\\" + char
    if char == "_" and not (before.isalnum() and after.isalnum()):
        return "\\_"
    if char == "%" and "%" in (before, after):
        return "&#37;"  # Gradio swaps its LaTeX placeholders back in the HTML, after escapes are gone
    if char == "@" or (char == ":" and text.startswith("//", index + 1)):
        return "\\" + char
    if char == "." and text[max(0, index - 3) : index].lower() == "www" and not text[max(0, index - 4) : index - 3].isalnum():
        return "\\."
    return char


def _escaped_line(line: str, continued: bool) -> str:
    """One line of a value; `continued`: it follows a line break (its indentation is kept)."""
    line = line.expandtabs(4)
    body = line.lstrip(" ") if continued else line
    indent = NBSP * (len(line) - len(body))
    escaped = "".join(_escaped_char(body, index) for index in range(len(body)))
    # HTML shows a run of spaces as one: keep the run's width, with a plain space last so lines can wrap.
    return indent + _SPACES.sub(lambda run: NBSP * (len(run[0]) - 1) + " ", escaped)


def md_escape(text: object) -> Markdown:
    """`text` as Markdown that Gradio's gr.Markdown shows literally (line breaks kept)."""
    if isinstance(text, Markdown):
        return text
    text = str(text).replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    body = text.lstrip(" \t")
    indent = " " if len(body) < len(text) else ""  # four spaces would begin a code block
    lead = ""
    if body[:1] in BLOCK_START:
        lead, body = "\\" + body[0], body[1:]
    elif number := _ORDERED.match(body):
        end = number.end()
        lead, body = body[:end] + "\\" + body[end], body[end + 1 :]
    lines = body.split("\n")
    return Markdown(indent + lead + LINE_BREAK.join(_escaped_line(line, n > 0) for n, line in enumerate(lines)))


def md_code(text: object) -> Markdown:
    """`text` as an inline code span (one line; backticks in it kept)."""
    text = " ".join(str(text).splitlines())
    if not text:
        return Markdown("")
    fence = "`" * (max(map(len, _BACKTICKS.findall(text)), default=0) + 1)
    # A code span drops one space at each end when both are there, and may not touch its fence.
    padded = text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" ") and text.strip())
    pad = " " if padded else ""
    return Markdown(f"{fence}{pad}{text}{pad}{fence}")


def md_code_block(text: str) -> Markdown:
    """`text` (any lines) as a fenced code block that no line of it can close."""
    fence = "`" * max(3, max(map(len, _BACKTICKS.findall(text)), default=0) + 1)
    return Markdown(f"{fence}\n{text}\n{fence}")


def md_list(items: Iterable[object]) -> Markdown:
    """A bullet list, one item per value."""
    return Markdown("\n".join(f"- {md_escape(item)}" for item in items))


def md_t(t: Translator, key: str, **fields: object) -> Markdown:
    """The catalogue text for `key` (Markdown as written) with its fields filled in escaped."""
    return Markdown(t.t(key, **{name: md_escape(value) for name, value in fields.items()}))
