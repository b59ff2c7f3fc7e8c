"""The Queue page (route "queue"): the queued runs in order with their status; move a waiting one up or down,
cancel it (the running one: stop it), queue an ended one again, clear the ended ones, pause and resume the queue.
The table follows the queue while it works (a managed poll timer, gui/runs/poll_timers.py).

`WORKER` is the GUI process's queue worker (gui/runs/queue_worker.py) over the training runner (History
records its runs), the tool runner and the Generate page's runner (that page shows a queued generation's images);
kohya_gui.py starts it.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from gui.generate.generate_page import GENERATE_RUNNER
from gui.i18n import Translator
from gui.markdown_text import md_escape
from gui.queue import queue_actions as actions
from gui.queue.queue_line import wake_queue_line
from gui.runs.poll_timers import poll_timer, wake_after
from gui.runs.queue_worker import QueueWorker
from gui.runs.run_queue import ENDED, QUEUE, RunQueue
from gui.tools.tool_form import TOOL_RUNNER
from gui.training.lora_actions import RUNNER

WORKER = QueueWorker(QUEUE, RUNNER, TOOL_RUNNER, GENERATE_RUNNER)


def build_queue_page(
    app: gr.Blocks, t: Translator, queue: RunQueue = QUEUE, worker: QueueWorker = WORKER
) -> None:
    """The page's components and events in the current Blocks (inside a `TabPolling.tab`)."""
    gr.Markdown(f"## {t.t('ui.page.queue')}\n{t.t('ui.queue.intro')}")
    with gr.Row(equal_height=True):
        state = gr.Markdown(elem_id="queue_state")
        pause = gr.Button(t.t("ui.queue.pause"), scale=0, min_width=200, elem_id="queue_pause")
    table = gr.Dataframe(headers=actions.table_headers(t), value=[], interactive=False, wrap=True, max_height=420,
                         column_widths=["7%", "23%", "30%", "20%", "20%"], elem_id="queue_table")  # fmt: skip
    listed = gr.State([])  # the ids of the table's rows, in order
    with gr.Row(equal_height=True):
        chosen = gr.Dropdown(
            label=t.t("ui.queue.item"), choices=[], value=None, scale=4, elem_id="queue_item"
        )
        up = gr.Button(t.t("ui.queue.up"), scale=0, min_width=150, elem_id="queue_up")
        down = gr.Button(t.t("ui.queue.down"), scale=0, min_width=150, elem_id="queue_down")
        cancel = gr.Button(
            t.t("ui.queue.cancel"), variant="stop", scale=0, min_width=150, elem_id="queue_cancel"
        )
        again = gr.Button(t.t("ui.queue.again"), scale=0, min_width=160, elem_id="queue_again")
        clear = gr.Button(t.t("ui.queue.clear"), scale=0, min_width=160, elem_id="queue_clear")
    message = gr.Markdown(elem_id="queue_message")
    timer = poll_timer(2.0)

    def listing(selected: Any) -> tuple[Any, ...]:
        items = queue.items()
        choices = [actions.item_choice(item, t) for item in items]
        ids = [item.id for item in items]
        paused = queue.paused
        running, waiting, _ = actions.line_counts(queue)
        key = "ui.queue.state_paused" if paused else "ui.queue.state"
        return (actions.table_rows(items, t), ids, gr.Dropdown(choices=choices, value=selected if selected in ids else None),
                t.t(key, running=running, waiting=waiting),
                gr.Button(t.t("ui.queue.resume" if paused else "ui.queue.pause"),
                          variant="primary" if paused else "secondary"))  # fmt: skip

    list_outputs = [table, listed, chosen, state, pause]
    app.load(listing, inputs=chosen, outputs=list_outputs, show_progress="hidden")

    def act(event: Any) -> None:
        """An action's click: its message, then the table again; the timer follows what it started."""
        wake_after(event)
        wake_queue_line(event)  # this page's header line follows too (a resumed queue starts at once)
        event.then(listing, inputs=chosen, outputs=list_outputs, show_progress="hidden")

    def on_pause() -> str:
        paused = not queue.paused
        queue.set_paused(paused)
        return t.t("ui.queue.paused_now" if paused else "ui.queue.resumed_now")

    def on_move(item_id: Any, offset: int) -> str:
        return "" if queue.move(str(item_id or ""), offset) else t.t("ui.queue.cannot_move")

    def on_cancel(item_id: Any) -> str:
        if not item_id:
            return t.t("ui.queue.pick_one")
        done = worker.cancel(str(item_id))
        return t.t(f"ui.queue.{done}_now") if done else t.t("ui.queue.not_waiting")

    def on_again(item_id: Any) -> str:
        item = queue.item(str(item_id or ""))
        if item is None:
            return t.t("ui.queue.pick_one")
        if item.status not in ENDED or not queue.requeue(item.id):
            return t.t("ui.queue.not_ended")
        return t.t("ui.queue.again_now", name=md_escape(item.name))

    def on_clear() -> str:
        return t.t("ui.queue.cleared", count=queue.clear_ended())

    act(pause.click(on_pause, outputs=message))
    act(up.click(lambda item: on_move(item, -1), inputs=chosen, outputs=message))
    act(down.click(lambda item: on_move(item, 1), inputs=chosen, outputs=message))
    act(cancel.click(on_cancel, inputs=chosen, outputs=message))
    act(again.click(on_again, inputs=chosen, outputs=message))
    act(clear.click(on_clear, outputs=message))

    def pick(ids: list[str], event: gr.SelectData) -> Any:
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        return ids[row] if isinstance(row, int) and 0 <= row < len(ids) else gr.skip()

    table.select(pick, inputs=listed, outputs=chosen, show_progress="hidden")

    def tick(selected: Any, last: dict[str, Any]) -> tuple[Any, ...]:
        """While the queue works: the table follows it; unchanged values are skipped."""
        values = listing(selected)
        now = json.dumps([values[0], values[3], str(selected or "")], ensure_ascii=False)
        shown = list(values) if now != last.get("seen") else [gr.skip()] * len(list_outputs)
        active = actions.line_active(queue) or worker.busy()
        return (*shown, {"seen": now}, *timer.after_tick(active))

    seen = gr.State({})
    timer.timer.tick(tick, inputs=[chosen, seen], outputs=[*list_outputs, seen, *timer.outputs()],
                     show_progress="hidden")  # fmt: skip
