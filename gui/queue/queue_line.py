"""The queue's line in every page's header ("Queue: 1 running, 2 waiting", a link to the Queue page).

Cheap when idle (docs/performance.md, "GUI pages"): its timer starts active, so its first tick shows the queue,
and a tick that finds nothing running and nothing about to start stops the timer (as the progress panels'
timers do: gui/runs/poll_timers.py). "Add to queue" on the same page starts it again (`wake_queue_line`). While
the queue works it ticks every `LINE_SECONDS` and sends the line only when it changed.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import gradio as gr
from gradio.context import Context

from gui.i18n import Translator
from gui.queue.queue_actions import line_active, line_html
from gui.runs.run_queue import QUEUE, RunQueue

LINE_SECONDS = 5.0
# The line's timer of the page being built (with its Blocks and page), for `wake_queue_line`.
_BUILDING: ContextVar[tuple[Any, str, gr.Timer] | None] = ContextVar("queue_line", default=None)


def build_queue_line(t: Translator, queue: RunQueue = QUEUE) -> gr.HTML:
    """The line and its timer in the current Blocks (a page's header)."""
    line = gr.HTML(elem_id="queue_line", elem_classes=["queue-line-box"])
    root = Context.root_block
    # Filled in when the page loads (a callable value would show Gradio's loading overlay on it); the timer follows.
    root.load(lambda: line_html(queue, t), outputs=line, show_progress="hidden", queue=False)
    timer = gr.Timer(LINE_SECONDS)
    seen = gr.State("")

    def tick(last: str) -> tuple[Any, ...]:
        now = line_html(queue, t)
        return (
            (now if now != last else gr.skip()),
            now,
            (gr.skip() if line_active(queue) else gr.Timer(active=False)),
        )

    timer.tick(tick, inputs=seen, outputs=[line, seen, timer], show_progress="hidden", queue=False)
    _BUILDING.set((root, getattr(root, "current_page", ""), timer))
    return line


def wake_queue_line(event: Any) -> None:
    """Start the line's timer of the page being built again once `event` (an "Add to queue" click) is done."""
    building = _BUILDING.get()
    root = Context.root_block
    if building is None or building[0] is not root or building[1] != getattr(root, "current_page", ""):
        return  # a page without the header (a test's own Blocks)
    timer = building[2]
    event.then(lambda: gr.Timer(active=True), outputs=timer, queue=False, show_progress="hidden")
