"""Runtime text in the GUI's Markdown is shown as written (gui/markdown_text.py).

Rendered here with markdown-it (CommonMark, with tables and strikethrough as GitHub has them, raw HTML
allowed as Gradio allows it); tests/gui/test_browser_form.py checks Gradio's own renderer in Chromium.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gui.i18n import Translator
from gui.markdown_text import Markdown, md_code, md_code_block, md_escape, md_list, md_t

markdown_it = pytest.importorskip("markdown_it")
MD = markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
T = Translator("en")
BLOCKS = {"p", "li", "pre", "ul", "ol", "table", "tr", "td", "th", "h1", "h2", "h3", "blockquote", "hr"}

NASTY = [
    "copy a tokenizer folder to <folder>/openai_clip-vit-large-patch14 and pass --tokenizer_cache_dir",
    "no *.safetensors in /data/my *best* model/",
    "__init__, _private_, snake_case and a_ b _c",
    "C:\\_data\\new\\*x* and C:\\Users\\me\\",
    "[click](http://example.com) ![image](x.png)",
    "[ref]: http://example.com",
    "a | b | c",
    "# not a heading",
    "- not a bullet",
    "+ plus",
    "* star",
    "> quote",
    "1. one",
    "12) twelve",
    "3.",
    "=== setext",
    "--- rule",
    "&lt;b&gt; &amp; &#35; &copy; R&D",
    "`code` ``double`` ```fence```",
    "~~strike~~ ~tilde~",
    "<script>alert(1)</script><b>bold</b><!-- comment -->",
    "    four spaces first",
    "trailing backslash \\",
    "a\\\nb",
    "エラー: <フォルダ>/モデル_*重み*_.safetensors が見つかりません。",
    "**bold** __bold__",
    "<http://autolink.example> <me@mail.example>",
    "line one\nline two\n\nafter a blank line\n# hash line\n- dash line\n1. number line",
]


class _Text(HTMLParser):
    """The text of rendered HTML as a browser shows it (<br> and blocks as line breaks, runs of spaces
    as one space outside <pre>, no-break spaces as spaces), the tags it holds and each table cell's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text, self.tags, self.cells, self.in_pre, self.cell_start = "", [], [], False, 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)
        self.in_pre = self.in_pre or tag == "pre"
        if tag == "br" or (tag in BLOCKS and self.text and not self.text.endswith("\n")):
            self.text += "\n"
        self.cell_start = len(self.text) if tag == "td" else self.cell_start

    def handle_endtag(self, tag: str) -> None:
        self.in_pre = self.in_pre and tag != "pre"
        if tag == "td":
            self.cells.append(self.text[self.cell_start :].replace("\u00a0", " "))

    def handle_data(self, data: str) -> None:
        if data != "\n":  # (a line break between the renderer's tags)
            self.text += data if self.in_pre else re.sub(" +", " ", data)


def rendered(markdown: str) -> _Text:
    parser = _Text()
    parser.feed(MD.render(markdown))
    parser.text = parser.text.replace("\u00a0", " ").strip("\n")
    return parser


def shown(text: str) -> str:
    """`text` as literal display shows it: leading blanks of the first line dropped (as HTML does)."""
    return text.expandtabs(4).strip(" ")


@pytest.mark.parametrize("text", NASTY)
def test_any_text_is_shown_as_written_wherever_it_sits(text: str) -> None:
    escaped = md_escape(text)
    alone = rendered(escaped)
    assert alone.text == shown(text) and set(alone.tags) <= {"p", "br"}, (escaped, alone.tags)
    item = rendered(f"**Errors**\n- ❌ {escaped}\n- next")
    assert item.text == f"Errors\n❌ {shown(text)}\nnext" and item.tags.count("li") == 2, (escaped, item.tags)
    bold = rendered(f"- **{md_escape(text.strip())}**")
    assert bold.text == text.strip() and bold.tags.count("strong") == 1, (escaped, bold.tags)
    table = rendered(f"| a | b |\n|---|---|\n| {escaped} | x |")
    assert table.cells == [shown(text), "x"], (escaped, table.cells)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("<folder>/openai_clip", "\\<folder>/openai_clip"),
        ("*.safetensors", "\\*.safetensors"),
        ("cache_latents and __init__", "cache_latents and \\_\\_init\\_\\_"),  # only markup-making underscores
        ("C:\\_data", "C:\\\\\\_data"),
        ("[a](b)", "\\[a\\](b)"),
        ("a | b", "a \\| b"),
        ("# x", "\\# x"),
        ("1. x", "1\\. x"),
        ("&lt;", "\\&lt;"),
        ("`x`", "\\`x\\`"),
        ("$$x$$", "\\$\\$x\\$\\$"),  # Gradio's KaTeX delimiters
        ("%%%LATEX_BLOCK_0%%%", "&#37;&#37;&#37;LATEX_BLOCK_0&#37;&#37;&#37;"),  # Gradio's placeholders
        ("https://x.org www.x.org a@b.org", "https\\://x.org www\\.x.org a\\@b.org"),  # no autolinks
        ("one\ntwo\r\n  three\n", "one<br>two<br>&nbsp;&nbsp;three"),
        ("a  b", "a&nbsp; b"),
        ("       x", " x"),  # never an indented code block
        ("plain text, 1.5 steps (ok)", "plain text, 1.5 steps (ok)"),
        ("00.png: 2.5 MB", "00.png: 2.5 MB"),
    ],
)  # fmt: skip
def test_the_escaped_form(text: str, escaped: str) -> None:
    assert md_escape(text) == escaped


def test_markdown_we_made_is_not_escaped_again() -> None:
    code = md_code("a*b")
    assert isinstance(code, Markdown) and md_escape(code) == code == "`a*b`"
    assert md_t(T, "ui.tool_started", command=code) == "Started: `a*b`"
    assert md_t(T, "ui.saved_to", path="/out/*x*_1_") == "Saved to /out/\\*x\\*\\_1\\_"
    assert md_list(["<a>", "b_"]) == "- \\<a>\n- b\\_"


@pytest.mark.parametrize("text", ["C:\\a\\b", "`tick`", "a ``b`` c", " spaced ", "```", "x*y_z_<w>"])
def test_code_spans_hold_any_text(text: str) -> None:
    shown_code = rendered(f"model: {md_code(text)}")
    assert shown_code.tags == ["p", "code"] and shown_code.text == f"model: {text}"


def test_code_blocks_hold_any_lines() -> None:
    lines = "a line\n```\n````\n<folder> *x* _y_\n    indented"
    block = rendered(f"**Log**\n{md_code_block(lines)}\nafter")
    assert block.tags == ["p", "strong", "pre", "code", "p"] and block.text == f"Log\n{lines}\nafter"


# --- Where runtime text enters the GUI's Markdown


def test_a_preflight_report_shows_the_trainer_s_messages_as_written() -> None:
    from gui.runs.progress_view import preflight_markdown

    error = "the tokenizer is missing: copy it to <folder>/openai_clip-vit-large-patch14"
    warning = "no captions for /data/my *best* set_/__x__.png"
    report = {"ok": False, "errors": [error], "warnings": [warning], "model": {"path": "/m/`a`*b*.safetensors",
              "family": "sd1", "format": "single_file"}}  # fmt: skip
    text = rendered(preflight_markdown(report, T)).text
    assert f"❌ {error}" in text and f"⚠️ {warning}" in text and "/m/`a`*b*.safetensors (sd1, single_file)" in text


def test_a_failed_run_shows_its_error_hint_and_log_as_written() -> None:
    from gui.runs.progress_view import failure_text

    snapshot = {"status": "failed", "exit_code": 1, "log_tail": ["```", "Traceback <module>"],
                "errors": [{"message": "cannot save to C:\\_out\\ ", "errors": ["*.tmp left"], "hint": "see <folder>"}]}  # fmt: skip
    shown_failure = rendered(failure_text(snapshot, T))
    assert "cannot save to C:\\_out\\\n*.tmp left\nsee <folder>" in shown_failure.text
    assert "```\nTraceback <module>" in shown_failure.text and shown_failure.tags.count("pre") == 1


def test_preset_import_tool_and_caption_messages_show_paths_as_written(tmp_path: Path) -> None:
    from gui.dataset import caption_editor_actions
    from gui.tools.tool_form import start_tool
    from gui.tools.tool_specs import RESIZE_LORA
    from gui.training import lora_actions
    from gui.training.preset_load import preset_outcome
    from gui.training.presets import load_preset

    odd = tmp_path / "<set> *1* __x__"
    odd.mkdir()
    preset = odd / "p.json"
    preset.write_text("[1]", encoding="utf-8")
    refused = preset_outcome(load_preset(preset), preset, "p", lora_actions.TabValues(options={}), lora_actions.LORA, T)
    assert str(preset) in rendered(refused.message).text
    assert f"Cannot read {odd / 'none.json'} as JSON" in rendered(lora_actions.import_kohya(str(odd / "none.json"), T).message).text
    (odd / "cfg.json").write_text(json.dumps({"LoRA_type": "Flux1 OFT"}), encoding="utf-8")  # refused: OFT on FLUX.1
    assert f"{odd / 'cfg.json'} cannot be imported" in rendered(lora_actions.import_kohya(str(odd / "cfg.json"), T).message).text
    bad_number = start_tool(RESIZE_LORA, {"model": "a", "save_to": "b", "new_rank": "<rank>"}, T)
    assert "new_rank: expects a number, got '<rank>'" in rendered(bad_number).text
    loaded = caption_editor_actions.load({"folder": str(odd), "extension": ".txt"}, T)["message"]
    assert str(odd) in rendered(loaded).text
