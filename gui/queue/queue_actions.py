"""What the Queue page and the header line show, on queue items: labels, the table, the header's counts, the
"added" message. No widgets here (gui/queue/queue_page.py, gui/queue/queue_line.py); no torch."""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from typing import Any

from gui.i18n import Translator
from gui.markdown_text import Markdown, md_t
from gui.runs.run_queue import QueueItem, RunQueue

TRAINING_PAGES = ("lora", "dreambooth", "finetune", "textual_inversion", "leco", "video")


def status_label(item: QueueItem, t: Translator) -> str:
    """The status as the History page words it; a run refused at its start says why."""
    if item.error:
        return f"{t.t('ui.queue.status.failed')}: {item.error}"
    if item.status == "failed":
        return (
            t.t("ui.status.failed", code=item.exit_code)
            if item.exit_code is not None
            else t.t("ui.queue.status.failed")
        )
    if item.status in ("running", "finished", "stopped", "interrupted"):
        return t.t(f"ui.status.{item.status}")
    return t.t(f"ui.queue.status.{item.status}")  # waiting, cancelled


def page_label(item: QueueItem, t: Translator) -> str:
    """The page it was queued from: a training page's name, the tool's, or the Generate page's."""
    if item.kind == "training":
        return t.t(f"ui.tab.{item.page}") if item.page in TRAINING_PAGES else item.page
    if item.kind == "generate":
        return t.t("ui.page.generate")
    return t.t(f"ui.tooltab.{item.page}")


def _time(stamp: Any) -> str:
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if isinstance(stamp, (int, float)) else ""
    )


def table_headers(t: Translator) -> list[str]:
    return [t.t(f"ui.queue.col.{name}") for name in ("position", "page", "name", "status", "added")]


def table_rows(items: Sequence[QueueItem], t: Translator) -> list[list[str]]:
    """One row an item in queue order; the position counts the waiting ones (1: starts next)."""
    rows, place = [], 0
    for item in items:
        place += item.status == "waiting"
        position = str(place) if item.status == "waiting" else ""
        rows.append([position, page_label(item, t), item.name, status_label(item, t), _time(item.added_at)])
    return rows


def item_choice(item: QueueItem, t: Translator) -> tuple[str, str]:
    return f"{page_label(item, t)}  {item.name}  ({status_label(item, t)})  {_time(item.added_at)}", item.id


def line_counts(queue: RunQueue) -> tuple[int, int, bool]:
    """(running, waiting, paused)."""
    counts = queue.counts()
    return counts.get("running", 0), counts.get("waiting", 0), queue.paused


def line_html(queue: RunQueue, t: Translator) -> str:
    """The header's line: a link to the Queue page saying what runs and waits (and whether it is paused)."""
    running, waiting, paused = line_counts(queue)
    if not running and not waiting:
        text = t.t("ui.queue.line_empty")
    else:
        text = t.t("ui.queue.line_paused" if paused else "ui.queue.line", running=running, waiting=waiting)
    busy = " queue-busy" if running or (waiting and not paused) else ""
    # Relative: every page sits at the app's root (a root_path prefix kept), so "queue" is the Queue page.
    return f'<a class="queue-line{busy}" href="queue">{html.escape(text)}</a>'


def line_active(queue: RunQueue) -> bool:
    """Whether the line can change by itself: an item runs, or one waits for its turn."""
    running, waiting, paused = line_counts(queue)
    return bool(running or (waiting and not paused))


def last_start(queue: RunQueue, kind: str) -> str:
    """The last start of an item of `kind` (its id and time; "" when none started): a new value, a queued run
    began (an item queued again starts under the same id)."""
    started = [item for item in queue.items() if item.kind == kind and item.started_at is not None]
    last = max(started, key=lambda item: item.started_at or 0.0, default=None)
    return f"{last.id}@{last.started_at}" if last else ""


def queued_text(queue: RunQueue, item_id: str, t: Translator, what: object) -> Markdown:
    """ "Added to the queue" with the item's place among the waiting ones and what it will run."""
    waiting = [item.id for item in queue.items() if item.status == "waiting"]
    place = waiting.index(item_id) + 1 if item_id in waiting else 1
    key = "ui.queue.added_paused" if queue.paused else "ui.queue.added"
    return md_t(t, key, position=place, waiting=len(waiting), what=what)
