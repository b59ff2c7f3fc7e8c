"""The queue's line in every page's header ("Queue: 1 running, 2 waiting", a link to the Queue page).

Cheap when idle (docs/performance.md, "GUI pages"): its timer starts active, so its first tick shows the queue,
and a tick that finds nothing running and nothing about to start stops the timer (as the progress panels'
timers do: gui/runs/poll_timers.py). "Add to queue" on the same page starts it again (`wake_queue_line`). While
the queue works it ticks every `LINE_SECONDS` and sends the line only when it changed.

A page whose panel shows queued runs of its own runner (the Generate page) has its stopped poll timer started
again by those ticks when such a run begins (`wake_on_queue_start`): an item that waited behind a training run
shows its progress and images on a page left open, with no timer of the page ticking while it waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

import gradio as gr
from gradio.context import Context

from gui.i18n import Translator
from gui.queue.queue_actions import last_start, line_active, line_html
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


def _line_timer() -> gr.Timer | None:
    """The line's timer of the page being built; None on a page without the header (a test's own Blocks)."""
    building = _BUILDING.get()
    root = Context.root_block
    if building is None or building[0] is not root or building[1] != getattr(root, "current_page", ""):
        return None
    return building[2]


def wake_queue_line(event: Any) -> None:
    """Start the line's timer of the page being built again once `event` (an "Add to queue" click) is done."""
    timer = _line_timer()
    if timer is not None:
        event.then(lambda: gr.Timer(active=True), outputs=timer, queue=False, show_progress="hidden")


def wake_on_queue_start(kind: str, timers: Sequence[gr.Timer], queue: RunQueue = QUEUE) -> None:
    """Start `timers` (poll timers of the page being built) on the line's tick that first sees a new start of a
    queued item of `kind`; they stop themselves again when its run has ended."""
    line_timer = _line_timer()
    if line_timer is None or not timers:
        return
    seen = gr.State("")

    def tick(last: str) -> tuple[Any, ...]:
        now = last_start(queue, kind)
        if now == last:
            return (gr.skip(),) * (1 + len(timers))
        return now, *(gr.Timer(active=True) for _ in timers)  # the first tick too: one look, then they stop

    line_timer.tick(tick, inputs=seen, outputs=[seen, *timers], show_progress="hidden", queue=False)
