"""A log text box that follows new lines, unless the user scrolled up to read.

Gradio's own `autoscroll` does nothing for a non-interactive text box (measured: scrollTop stayed 0
while lines were added). Here a client-side handler on every change scrolls the box to its end when
it was at its end before (within a few pixels), so reading older lines is never interrupted and
scrolling back down resumes following.
"""

from __future__ import annotations

import json

import gradio as gr

_FOLLOW_JS = """
() => {
  const box = document.querySelector(%s);
  if (!box) return;
  if (!box.dataset.follow) {
    box.dataset.follow = "1";
    box.addEventListener("scroll", () => {
      box.dataset.follow = box.scrollHeight - box.scrollTop - box.clientHeight < 8 ? "1" : "0";
    });
  }
  if (box.dataset.follow === "1") {
    setTimeout(() => { box.scrollTop = box.scrollHeight; }, 30);
  }
}
"""


def log_box(label: str, elem_id: str, lines: int = 10, max_lines: int = 20) -> gr.Textbox:
    """A read-only log box that follows its end (see the module docstring)."""
    box = gr.Textbox(label=label, lines=lines, max_lines=max_lines, autoscroll=False, interactive=False,
                     elem_id=elem_id, elem_classes=["log-view"])  # fmt: skip
    box.change(None, js=_FOLLOW_JS % json.dumps(f"#{elem_id} textarea"))
    return box
