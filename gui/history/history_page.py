"""The History page (route "history"): the recorded runs (gui/runs/run_history.py) in a table, newest first, with
a search box; a run's details (command, log tail, loss curve, samples); "Open in its page" and "Run again"; two
runs compared (the options that differ, both loss curves in one plot). What the buttons do is
gui/history/history_actions.py; the table follows a run while one goes (a managed poll timer, gui/runs/poll_timers.py).
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from gui.history import history_actions as actions
from gui.i18n import Translator
from gui.runs.log_view import log_box
from gui.runs.poll_timers import poll_timer, wake_after
from gui.runs.run_history import HISTORY, RunHistory
from gui.runs.runner import TrainingRunner
from gui.training import lora_actions

# Pinned, so the plot's label can name them (Gradio's legend below the plot is cut off by its box).
CURVE_COLOURS = {"A": "#1f6fd1", "B": "#f58518"}
# "Open in its page": the page's address from this page's own (a root_path prefix kept).
GO_TO_PAGE_JS = """(route) => {
  if (route === null || route === undefined || route === "") return;
  const base = window.location.pathname.replace(/\\/history\\/?$/, "/");
  window.location.assign(base + (route === "." ? "" : route));
}"""


def build_history_page(
    app: gr.Blocks, t: Translator, history: RunHistory = HISTORY, runner: TrainingRunner | None = None
) -> None:
    """The page's components and events in the current Blocks (inside a `TabPolling.tab`)."""
    runner = runner or lora_actions.RUNNER
    gr.Markdown(f"## {t.t('ui.page.history')}\n{t.t('ui.history.intro')}")
    with gr.Row(equal_height=True):
        search = gr.Textbox(label=t.t("ui.history.search"), placeholder=t.t("ui.history.search_hint"), scale=4,
                            elem_id="history_search")  # fmt: skip
        refresh = gr.Button(t.t("ui.history.refresh"), scale=0, min_width=140, elem_id="history_refresh")
    table = gr.Dataframe(headers=actions.table_headers(t), value=[], interactive=False, wrap=True, max_height=360,
                         elem_id="history_table")  # fmt: skip
    listed = gr.State([])  # the ids of the table's rows, in order
    with gr.Row(equal_height=True):
        chosen = gr.Dropdown(label=t.t("ui.history.run"), choices=[], value=None, scale=4, elem_id="history_run")
        open_button = gr.Button(t.t("ui.history.open"), scale=0, min_width=200, elem_id="history_open")
        rerun = gr.Button(t.t("ui.history.rerun"), variant="primary", scale=0, min_width=160, elem_id="history_rerun")
    message = gr.Markdown(elem_id="history_message")
    route = gr.Textbox(visible=False, elem_id="history_route")
    details = gr.Markdown(elem_id="history_details")
    command = gr.Textbox(label=t.t("ui.history.command"), lines=2, max_lines=6, interactive=False,
                         elem_id="history_command")  # fmt: skip
    with gr.Row(equal_height=False):
        plot = gr.LinePlot(None, x="step", y="loss", color="series", label=t.t("ui.loss"), x_title=t.t("ui.step"),
                           y_title=t.t("ui.loss"), color_title="", height=260, elem_id="history_loss_plot")  # fmt: skip
        gallery = gr.Gallery(label=t.t("ui.samples"), columns=4, height=260, elem_id="history_samples")
    log = log_box(t.t("ui.log"), "history_log")
    with gr.Accordion(t.t("ui.history.compare_title"), open=True, elem_id="history_compare_group"):
        with gr.Row(equal_height=True):
            first = gr.Dropdown(label=t.t("ui.history.run_a"), choices=[], value=None, elem_id="history_compare_a")
            second = gr.Dropdown(label=t.t("ui.history.run_b"), choices=[], value=None, elem_id="history_compare_b")
            compare = gr.Button(t.t("ui.history.compare"), scale=0, min_width=140, elem_id="history_compare")
        compare_message = gr.Markdown(elem_id="history_compare_message")
        diff = gr.Dataframe(headers=[t.t("ui.history.option"), "A", "B"], value=[], interactive=False, wrap=True,
                            elem_id="history_diff")  # fmt: skip
        compare_plot = gr.LinePlot(None, x="step", y="loss", color="series", label=t.t("ui.history.loss_curves"),
                                   x_title=t.t("ui.step"), y_title=t.t("ui.loss"), color_title="", height=300,
                                   color_map=CURVE_COLOURS,
                                   elem_id="history_compare_plot")  # fmt: skip
    timer = poll_timer(2.0)

    def listing(query: str, selected: Any, a: Any, b: Any) -> tuple[list[list[str]], list[str], Any, Any, Any]:
        runs = history.search(query or "")
        choices = [actions.run_choice(run, t) for run in runs]
        ids = [run_id for _, run_id in choices]

        def keep(value: Any) -> Any:
            return gr.Dropdown(choices=choices, value=value if value in ids else None)

        return actions.table_rows(runs, t), ids, keep(selected), keep(a), keep(b)

    def show(run_id: Any) -> tuple[Any, ...]:
        run_id = str(run_id or "")
        frame = actions.loss_frame(history, [(t.t("ui.average_loss"), run_id)], t) if run_id else None
        return (actions.details_markdown(history, run_id, t), actions.command_line(history, run_id), frame,
                actions.samples(history, run_id) or None, actions.log_tail(history, run_id))  # fmt: skip

    list_outputs = [table, listed, chosen, first, second]
    shown_outputs = [details, command, plot, gallery, log]
    app.load(listing, inputs=[search, chosen, first, second], outputs=list_outputs, show_progress="hidden")
    search.submit(listing, inputs=[search, chosen, first, second], outputs=list_outputs)
    refresh.click(listing, inputs=[search, chosen, first, second], outputs=list_outputs)
    chosen.change(show, inputs=chosen, outputs=shown_outputs, show_progress="hidden")

    def pick(ids: list[str], event: gr.SelectData) -> Any:
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        return ids[row] if isinstance(row, int) and 0 <= row < len(ids) else gr.skip()

    table.select(pick, inputs=listed, outputs=chosen, show_progress="hidden")

    def opened(run_id: Any) -> tuple[str, str]:
        result = actions.open_in_page(history, str(run_id or ""), t)
        # "." for the main page: an empty value means "stay".
        return result.message, "" if result.route is None else (result.route or ".")

    open_button.click(opened, inputs=chosen, outputs=[message, route]).then(None, inputs=route, js=GO_TO_PAGE_JS)

    def again(run_id: Any) -> str:
        return actions.run_again(history, str(run_id or ""), t, runner)

    started = rerun.click(again, inputs=chosen, outputs=message)
    wake_after(started)
    started.then(listing, inputs=[search, chosen, first, second], outputs=list_outputs, show_progress="hidden")

    def compared(a: Any, b: Any) -> tuple[Any, ...]:
        result = actions.compare(history, str(a or ""), str(b or ""), t)
        return result.message, gr.Dataframe(value=result.rows, headers=result.headers), result.plot

    compare.click(compared, inputs=[first, second], outputs=[compare_message, diff, compare_plot])

    def tick(query: str, selected: Any, a: Any, b: Any, last: dict[str, Any]) -> tuple[Any, ...]:
        """While a run goes: the table and the chosen run's details follow it; unchanged values are skipped."""
        rows, ids, *choosers = listing(query, selected, a, b)
        now = json.dumps([rows, str(selected or "")], ensure_ascii=False)
        fresh = now != last.get("seen")
        listed_values = [rows, ids, *choosers] if fresh else [gr.skip()] * len(list_outputs)
        follow = selected and (fresh or runner.running)
        details_values = list(show(selected)) if follow else [gr.skip()] * len(shown_outputs)
        return (*listed_values, *details_values, {"seen": now}, *timer.after_tick(runner.running))

    seen = gr.State({})
    timer.timer.tick(tick, inputs=[search, chosen, first, second, seen],
                     outputs=[*list_outputs, *shown_outputs, seen, *timer.outputs()], show_progress="hidden")  # fmt: skip
