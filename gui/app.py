"""The Gradio application shell: builds the Blocks that every tab plugs into, in one language.

The GUI process stays light: nothing here (or in any gui/ module) imports torch, diffusers or
transformers; training and tools run as subprocesses against backend/. The language is chosen at
start (`--language`, else the OS locale) and every text is built in it: no DOM patching.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

import gradio as gr

from backend.options.schema import ALL_COMMANDS, options_for
from gui.dataset_tabs import build_caption_editor_tab, build_captioning_tab, build_dataset_tab
from gui.file_dialog import browse, dialogs_available
from gui.i18n import Translator
from gui.lora_tab import build_lora_tab
from gui.tool_specs import LORA_TOOLS, METADATA_TOOLS
from gui.tools_tab import build_tools_tab
from gui.training_kinds import FINETUNE

APP_TITLE = "Kohya LoRA Trainer"
# Wider page than Gradio's default: the form has three fields per row.
CSS = ".gradio-container { max-width: 1400px !important; }"


def environment_summary(t: Translator) -> str:
    """What this installation offers, read from the option schema (as data, without torch)."""
    rows = "\n".join(
        f"| {t.command_label(command)} | `{command}` | {len(options_for(command))} |" for command in ALL_COMMANDS
    )
    header = f"| {t.t('ui.about.command')} | | {t.t('ui.about.options')} |\n|---|---|---|\n"
    return t.t("ui.about.python", version=platform.python_version(), system=platform.system()) + "\n\n" + header + rows


def build_app(
    language: str | None = None, headless: bool = False, defaults: Mapping[str, Any] | None = None
) -> gr.Blocks:
    """The whole app in `language` (default: the OS locale's); `headless` turns file dialogs off;
    `defaults` (option name -> value, from the GUI config) are the forms' initial values."""
    t = Translator(language)
    picker = browse if dialogs_available(headless) else None
    with gr.Blocks(title=APP_TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {APP_TITLE}")
        with gr.Tab(t.t("ui.tab.lora"), elem_id="tab_lora"):
            lora = build_lora_tab(t, picker, defaults)
        with gr.Tab(t.t("ui.tab.finetune"), elem_id="tab_finetune"):

            def metadata_steps() -> None:
                with gr.Accordion(t.t("ui.finetune_metadata"), open=False, elem_id="finetune_metadata"):
                    gr.Markdown(t.t("ui.finetune_metadata_info"))
                    build_tools_tab(t, METADATA_TOOLS, picker, "finetune_tools")

            finetune = build_lora_tab(t, picker, defaults, FINETUNE, before_form=metadata_steps)
        with gr.Tab(t.t("ui.tab.captioning"), elem_id="tab_captioning"):
            build_captioning_tab(t, picker)
        with gr.Tab(t.t("ui.tab.caption_editor"), elem_id="tab_caption_editor"):
            build_caption_editor_tab(t, picker)
        with gr.Tab(t.t("ui.tab.dataset"), elem_id="tab_dataset"):
            build_dataset_tab(t, picker)
        with gr.Tab(t.t("ui.tab.tools"), elem_id="tab_lora_tools"):
            build_tools_tab(t, LORA_TOOLS, picker, "lora_tools")
        with gr.Tab(t.t("ui.tab.about"), elem_id="tab_about"):
            gr.Markdown(environment_summary(t))
        app.load(lora.preset_choices, outputs=lora.preset_chooser)
        app.load(finetune.preset_choices, outputs=finetune.preset_chooser)
    return app
