"""A tab of command-line tools: a sub-tab per tool (description, its form, Run/Stop), and below them
the tool runner's status, progress and log. Used by the LoRA tools, captioning and dataset tabs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gradio as gr

from gui.i18n import Translator
from gui.tools.tool_form import ToolForm, ToolSpec, build_tool_form, build_tool_panel


def build_tools_tab(
    t: Translator, specs: Sequence[ToolSpec], browse: Callable[[str, bool], str] | None, prefix: str
) -> dict[str, ToolForm]:
    forms: dict[str, ToolForm] = {}
    for spec in specs:
        with gr.Tab(t.t(f"ui.tooltab.{spec.name}"), elem_id=f"tooltab_{spec.name}"):
            gr.Markdown(t.t(f"ui.tooldesc.{spec.name}"))
            forms[spec.name] = build_tool_form(t, spec, browse)
    build_tool_panel(t, prefix)
    return forms
