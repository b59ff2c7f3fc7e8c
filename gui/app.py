"""The Gradio application shell: builds the Blocks that every tab plugs into, in one language.

The GUI process stays light: nothing here (or in any gui/ module) imports torch, diffusers or
transformers; training and tools run as subprocesses against backend/. The language is chosen at
start (`--language`, else the OS locale) and every text is built in it: no DOM patching. Runtime
messages (backend/messages.py) follow: this process's and those of the processes it starts.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr

from backend.messages import set_language
from backend.options.schema import ALL_COMMANDS, options_for
from gui.dataset.dataset_tabs import build_caption_editor_tab, build_captioning_tab, build_dataset_tab
from gui.file_dialog import browse, dialogs_available
from gui.generate.generate_page import build_generate_page
from gui.history.history_page import build_history_page
from gui.i18n import Translator
from gui.markdown_text import md_code, md_escape, md_t
from gui.page_values import PageValuesBlocks
from gui.queue.queue_line import build_queue_line
from gui.queue.queue_page import build_queue_page
from gui.quick.quick_page import build_quick_page
from gui.runs.poll_timers import TabPolling
from gui.tools.tool_specs import LORA_TOOLS, METADATA_TOOLS
from gui.tools.tools_tab import build_tools_tab
from gui.training.lora_tab import LoraTab, build_lora_tab
from gui.training.option_search import IME_FILTER_JS
from gui.training.training_kinds import DREAMBOOTH, FINETUNE, LECO, TEXTUAL_INVERSION, VIDEO

APP_TITLE = "Kohya LoRA Trainer"
# - A wider page than Gradio's default: the form has three fields per row. `overflow: clip` instead
#   of Gradio's `hidden`, which made the container a scroll box and so kept sticky elements from
#   sticking to the window.
# - Help texts (`info`) are folded away and shown for the field under the pointer or with the focus,
#   as a popover in the theme's full text colour. Gradio's own grey measured 1.9:1 on white; help
#   shown in place elsewhere gets a darker grey. All are above 4.5:1 in both themes
#   (tests/gui/test_browser.py measures them). The "Show all help
#   texts" box shows every one in place. Fields, sections and Gradio's `.form` wrappers (overflow
#   hidden) must not clip the popover.
# - The navigation bar's page links in the help texts' muted colour (Gradio's grey measured 1.9:1).
# - The training tabs' action bar stays at the bottom of the window while the form scrolls.
# Gradio also adds a copy of each rule prefixed with ".gradio-container .contain", which outranks
# plain selectors: no rule here depends on <body>, and the show-all rule outranks both by an id.
CSS = """
.gradio-container { max-width: 1400px !important; overflow: clip !important; }
:root { --help-fg: #27272a; --help-bg: #ffffff; --help-border: #71717a; --help-muted: #52525b; }
.dark { --help-fg: #f4f4f5; --help-bg: #27272a; --help-border: #a1a1aa; --help-muted: #d4d4d8; }
.info-text { color: var(--help-muted) !important; }
.opt-field { position: relative; overflow: visible !important; }
.opt-group, .form:has(> .opt-field) { overflow: visible !important; }
.opt-field .info-text { display: none; }
.opt-field:hover .info-text, .opt-field:focus-within .info-text {
  display: block; position: absolute; left: 0; right: 0; top: calc(100% + 2px); z-index: 1000;
  padding: 8px 10px; background: var(--help-bg); color: var(--help-fg) !important; border: 1px solid var(--help-border);
  border-radius: 6px; box-shadow: 0 6px 16px rgba(0, 0, 0, 0.18); pointer-events: none; line-height: 1.45;
}
.contain:has(#show_all_help input:checked) .opt-field .info-text {
  display: block; position: static; padding: 0; background: none; border: 0; box-shadow: none; color: var(--help-fg) !important;
}
.action-bar {
  position: sticky !important; bottom: 0; z-index: 1100; overflow: visible !important;
  background: var(--background-fill-primary) !important; border-top: 2px solid var(--color-accent) !important;
  box-shadow: 0 -6px 14px rgba(0, 0, 0, 0.14); padding: 6px !important; border-radius: 6px;
}
.action-bar .action-message { max-height: 30vh; overflow-y: auto; }
.bar-status { display: flex; gap: 12px; align-items: center; padding: 0 6px; color: var(--body-text-color); }
.bar-status .lora-progress { flex: 1; }
.search-hit { outline: 3px solid var(--color-accent); outline-offset: 2px; }
.log-view textarea { font-family: var(--font-mono); font-size: var(--text-sm); }
a[data-sveltekit-reload]:not(.active) { color: var(--help-muted) !important; }
.queue-line-box { flex-grow: 0 !important; min-width: max-content !important; align-self: center; }
.queue-line { white-space: nowrap; color: var(--help-muted) !important; }
.queue-line.queue-busy { color: var(--color-accent) !important; font-weight: 600; }
"""
# "Show all help texts" is remembered by the browser (the CSS reads the box itself).
SHOW_HELP_JS = """(show) => { try { localStorage.setItem("kohya-show-help", show ? "1" : "0"); } catch (e) {} }"""
SHOWN_HELP_JS = """() => { try { return localStorage.getItem("kohya-show-help") === "1"; } catch (e) { return false; } }"""


def environment_summary(t: Translator) -> str:
    """What this installation offers, read from the option schema (as data, without torch)."""
    rows = "\n".join(
        f"| {md_escape(t.command_label(command))} | {md_code(command)} | {len(options_for(command))} |"
        for command in ALL_COMMANDS
    )
    header = f"| {t.t('ui.about.command')} | | {t.t('ui.about.options')} |\n|---|---|---|\n"
    return md_t(t, "ui.about.python", version=platform.python_version(), system=platform.system()) + "\n\n" + header + rows


# The app is one Gradio page per training kind plus pages for data and tools (`Blocks.route`), not one page of
# tabs: Gradio's frontend refreshes the loading status of every component an event ever updated, each looked up
# by walking the whole layout, on every status change of every event. With all tabs on one page (2,800 components,
# ~580 of them restored on load) that made each edit and page load cost seconds of browser CPU, growing with
# every tab added; a page now holds only its own components (docs/performance.md, "GUI pages"). Paths: "" (LoRA),
# quick, dreambooth, finetune, textual_inversion, leco, video, data, tools, generate, history, queue, about.


def _page_header(t: Translator) -> gr.Checkbox:
    """Every page's title row, navigation bar (the LoRA page is the main one) and "Show all help texts" box,
    remembered by the browser across pages."""
    gr.Navbar(main_page_name=t.t("ui.tab.lora"))
    with gr.Row(equal_height=True):
        gr.Markdown(f"# {APP_TITLE}")
        build_queue_line(t)  # "Queue: 1 running, 2 waiting", a link to the Queue page (gui/queue/queue_line.py)
        show_help = gr.Checkbox(label=t.t("ui.show_help"), value=False, scale=0, min_width=220,
                                elem_id="show_all_help")  # fmt: skip
    show_help.change(None, inputs=show_help, js=SHOW_HELP_JS)
    return show_help


def _page_loads(app: gr.Blocks, show_help: gr.Checkbox) -> None:
    app.load(None, js=IME_FILTER_JS)
    app.load(None, outputs=show_help, js=SHOWN_HELP_JS)


def _training_page(app: PageValuesBlocks, t: Translator, key: str, build: Callable[[], LoraTab]) -> None:
    """A training kind's page: its form restored as it was left (or as the running training was started)."""
    polling = TabPolling()  # progress panels poll only while a run goes (gui/runs/poll_timers.py)
    show_help = _page_header(t)
    with polling.tab(key):
        tab = build()
    polling.wire({})
    app.values_when_served(tab.served_values)  # the form as it was left, in the page itself (gui/page_values.py)
    app.load(tab.preset_choices, outputs=tab.preset_chooser)
    app.load(lambda: tab.restore_note(t), outputs=tab.preset_message)
    _page_loads(app, show_help)


def _panel_page(app: gr.Blocks, t: Translator, key: str, build: Callable[[], Any]) -> None:
    """A page of one panel (tools, Quick LoRA, Generate, History, Queue): its progress timers poll only while its
    run goes."""
    polling = TabPolling()
    show_help = _page_header(t)
    with polling.tab(key):
        build()
    polling.wire({})
    _page_loads(app, show_help)


def build_app(
    language: str | None = None, headless: bool = False, defaults: Mapping[str, Any] | None = None
) -> gr.Blocks:
    """The whole app in `language` (default: the OS locale's); `headless` turns file dialogs off;
    `defaults` (option name -> value, from the GUI config) are the forms' initial values."""
    t = Translator(language)
    # Messages made in this process (validation, presets, imports) in the UI language; the trainers and
    # tools it starts get KOHYA_LANGUAGE in their own environment (gui/training/lora_actions.py, gui/tools/tool_form.py),
    # not through os.environ, which would outlive this app (tests build apps of both languages in one process).
    set_language(t.language)
    picker = browse if dialogs_available(headless) else None

    def metadata_steps() -> None:
        with gr.Accordion(t.t("ui.finetune_metadata"), open=False, elem_id="finetune_metadata"):
            gr.Markdown(t.t("ui.finetune_metadata_info"))
            build_tools_tab(t, METADATA_TOOLS, picker, "finetune_tools")

    with PageValuesBlocks(title=APP_TITLE, analytics_enabled=False) as app:
        _training_page(app, t, "lora", lambda: build_lora_tab(t, picker, defaults))
    with app.route(t.t("ui.page.quick"), "quick"):  # beside the LoRA page: a folder of images to a LoRA
        _panel_page(app, t, "quick", lambda: build_quick_page(t, picker))
    with app.route(t.t("ui.tab.dreambooth"), "dreambooth"):
        _training_page(app, t, "dreambooth", lambda: build_lora_tab(t, picker, defaults, DREAMBOOTH))
    with app.route(t.t("ui.tab.finetune"), "finetune"):
        _training_page(app, t, "finetune",
                       lambda: build_lora_tab(t, picker, defaults, FINETUNE, before_form=metadata_steps))  # fmt: skip
    with app.route(t.t("ui.tab.textual_inversion"), "textual_inversion"):
        _training_page(app, t, "textual_inversion", lambda: build_lora_tab(t, picker, defaults, TEXTUAL_INVERSION))
    with app.route(t.t("ui.tab.leco"), "leco"):  # after Textual Inversion, as kohya_ss's LECO tab
        _training_page(app, t, "leco", lambda: build_lora_tab(t, picker, defaults, LECO))
    with app.route(t.t("ui.tab.video"), "video"):
        _training_page(app, t, "video", lambda: build_lora_tab(t, picker, defaults, VIDEO))
    with app.route(t.t("ui.page.data"), "data"):
        polling = TabPolling()
        show_help = _page_header(t)
        tabs: dict[str, gr.Tab] = {}
        with gr.Tab(t.t("ui.tab.captioning"), elem_id="tab_captioning") as tabs["captioning"], polling.tab("captioning"):
            build_captioning_tab(t, picker)
        with gr.Tab(t.t("ui.tab.caption_editor"), elem_id="tab_caption_editor") as tabs["caption_editor"], polling.tab("caption_editor"):
            build_caption_editor_tab(t, picker)
        with gr.Tab(t.t("ui.tab.dataset"), elem_id="tab_dataset") as tabs["dataset"], polling.tab("dataset"):
            build_dataset_tab(t, picker)
        polling.wire(tabs)
        _page_loads(app, show_help)
    with app.route(t.t("ui.tab.tools"), "tools"):
        _panel_page(app, t, "lora_tools", lambda: build_tools_tab(t, LORA_TOOLS, picker, "lora_tools"))
    with app.route(t.t("ui.page.generate"), "generate"):
        _panel_page(app, t, "generate", lambda: build_generate_page(app, t, picker))
    with app.route(t.t("ui.page.history"), "history"):
        _panel_page(app, t, "history", lambda: build_history_page(app, t))
    with app.route(t.t("ui.page.queue"), "queue"):
        _panel_page(app, t, "queue", lambda: build_queue_page(app, t))
    with app.route(t.t("ui.tab.about"), "about"):
        show_help = _page_header(t)
        gr.Markdown(environment_summary(t))
        _page_loads(app, show_help)
    return app
