"""The progress area: status, progress bar, loss plot, sample images (or, for a kind whose samples are
videos, a player with the newest validation video), log; polled from the runner.

A `gr.Timer` asks `runner.snapshot()` every second while a run goes (gui/runs/poll_timers.py). The run lives
in the GUI process, so a page opened (or reopened) mid-run shows it at once. Every part is re-sent only when it changes
(gui/runs/poll_updates.py).
Each training tab shows only a run of its own kind; while the other tab's run is going, this tab
says so and names that tab (one run at a time). A compact copy of the status can be shown in the
tab's action bar, which stays in view while the form scrolls.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import gradio as gr
from PIL import Image

from gui.i18n import Translator
from gui.runs.log_view import log_box
from gui.runs.poll_timers import poll_timer
from gui.runs.poll_updates import changed_only
from gui.runs.progress_view import (
    failure_text,
    finished_text,
    loss_frame,
    progress_html,
    sample_paths,
    status_text,
)
from gui.runs.runner import TrainingRunner
from gui.runs.sample_videos import newest_video, servable_copy, video_samples
from gui.training.training_kinds import KINDS, TrainingKind

POLL_SECONDS = 1.0
LOG_TAIL = 200
# Quiet ticks after a run ends that resend everything before the timer stops: one update the page dropped while
# busy (a loaded machine) is sent again, not left missing for good (an empty player after "Finished"); output read
# after the end (samples, log lines) restarts the count, so it is shown too.
END_TICKS = 2


def _images(paths: list[str]) -> list[Image.Image]:
    # Sent as pixels rather than paths: output folders lie anywhere, outside what Gradio may serve.
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(image.copy())
        except OSError:
            continue  # a sample still being written shows up on a later poll
    return images


def _video_update(snapshot: Mapping[str, Any], t: Translator) -> Any:
    """The player's value and label for the newest validation video of the run (none yet: empty); None
    while that file cannot be read yet (a later tick tries again)."""
    newest = newest_video(video_samples(snapshot))
    if newest is None:
        return gr.Video(value=None, label=t.t("ui.validation_video"))
    copy = servable_copy(str(newest["path"]))
    if copy is None:
        return None
    label = t.t("ui.validation_video_step", step=newest.get("step", "?"))
    return gr.Video(value=copy, label=label)


def other_kind_text(snapshot: Mapping[str, Any], kind: TrainingKind | None, t: Translator) -> str | None:
    """What this tab says instead of showing a run that another tab started (None: the run is ours)."""
    owner = snapshot.get("kind")
    if kind is None or owner in (None, kind.key) or owner not in KINDS:
        return None
    tab = t.t(KINDS[owner].tab_label_key)
    return t.t("ui.other_run_running" if snapshot.get("status") == "running" else "ui.other_run_last", tab=tab)


def bar_status_html(snapshot: Mapping[str, Any], kind: TrainingKind | None, t: Translator) -> str:
    """The action bar's one-line status: the run's status and its progress bar, or the other tab's note."""
    other = other_kind_text(snapshot, kind, t)
    if other is not None:
        return f'<div class="bar-status">{html.escape(other)}</div>'
    return f'<div class="bar-status"><b>{html.escape(status_text(snapshot, t))}</b>{progress_html(snapshot, t, ids=False)}</div>'


def build_progress_panel(
    t: Translator, runner: TrainingRunner, prefix: str = "lora", kind: TrainingKind | None = None,
    bar_status: gr.HTML | None = None,
) -> gr.Timer:  # fmt: skip
    """The panel in the current Blocks; element ids are `<prefix>_status`, `<prefix>_progress`, ...

    With `kind`, a run of another kind is not shown here (see `other_kind_text`); `bar_status`
    (an HTML element elsewhere, e.g. the action bar) gets `bar_status_html` on every poll.
    """
    with gr.Group():
        status = gr.Textbox(label=t.t("ui.status"), interactive=False, elem_id=f"{prefix}_status")
        bar = gr.HTML(progress_html({}, t), elem_id=f"{prefix}_progress")
        outcome = gr.Markdown(elem_id=f"{prefix}_outcome")
    with gr.Row(equal_height=False):
        plot = gr.LinePlot(
            None, x="step", y="loss", color="series", label=t.t("ui.loss"),
            x_title=t.t("ui.step"), y_title=t.t("ui.loss"), color_title="", height=260, elem_id=f"{prefix}_loss_plot",
        )  # fmt: skip
        videos = kind is not None and kind.video_samples
        if videos:  # mp4s: the newest in a player (an image gallery cannot show them)
            gallery = gr.Video(label=t.t("ui.validation_video"), interactive=False, height=260, autoplay=True,
                               loop=True, elem_id=f"{prefix}_video")  # fmt: skip
        else:
            gallery = gr.Gallery(label=t.t("ui.samples"), columns=4, height=260, elem_id=f"{prefix}_samples")
    log = log_box(t.t("ui.log"), f"{prefix}_log")
    seen = gr.State({"samples": -1, "points": -1, "log": -1, "run": None, "texts": None})
    # The player/gallery after the texts and the log: a page that fails to show a sample still shows the rest.
    outputs: list[Any] = [status, bar, outcome, plot, log, gallery, seen]
    if bar_status is not None:
        outputs.append(bar_status)

    def on_tick(last: dict[str, Any]) -> tuple[Any, ...]:
        snapshot = actual = runner.snapshot(tail=LOG_TAIL)
        other = other_kind_text(snapshot, kind, t)
        if other is not None:  # another tab's run: none of its details here
            snapshot = {"status": "idle"}
        samples = sample_paths(snapshot)
        history = snapshot.get("history") or {"step": []}
        points = len(history["step"])
        texts = [other or status_text(snapshot, t), progress_html(snapshot, t),
                 failure_text(snapshot, t) or finished_text(snapshot, t)]
        if bar_status is not None:
            texts.append(bar_status_html(actual, kind, t))
        now = {"samples": len(samples), "points": points, "log": snapshot.get("log_lines", 0), "run": snapshot.get("pid"),
               "texts": texts, "status": actual.get("status")}
        # A new run (another pid) resends everything; so do the END_TICKS ticks from the one that sees the run end
        # or, after the end, anything new (the last ones a managed timer makes): an update the page dropped while
        # it was busy is sent again.
        ended = now["status"] != "running"
        news = any(now[key] != last.get(key) for key in ("samples", "points", "log"))
        if ended and now["run"] == last.get("run"):
            now["after_end"] = 1 if news else last.get("after_end", 0) + 1
        else:
            now["after_end"] = int(ended)
        fresh = now["run"] != last.get("run") or (ended and now["after_end"] <= END_TICKS)
        shown_samples: Any = gr.skip()
        unreadable = False
        if fresh or len(samples) != last["samples"]:
            shown_samples = _video_update(snapshot, t) if videos else _images(samples)
            if shown_samples is None:  # not readable yet: counted as unseen, so the next tick tries again
                shown_samples, now["samples"], unreadable = gr.skip(), last["samples"], True
        shown = changed_only(texts, None if fresh else last.get("texts"))
        result = [
            *shown[:3],
            (loss_frame(snapshot, t) if points else None) if fresh or points != last["points"] else gr.skip(),
            "\n".join(snapshot.get("log_tail", [])) if fresh or now["log"] != last["log"] else gr.skip(),
            shown_samples,
            now,
            *shown[3:],
            # (a sample not readable yet keeps the timer going after the run, until it is shown)
            *poll.after_tick(not ended or unreadable or now["after_end"] < END_TICKS),
        ]
        return tuple(result)

    poll = poll_timer(POLL_SECONDS)
    # Polls must not queue behind a long preflight or pile up when the server is slow.
    poll.timer.tick(on_tick, inputs=seen, outputs=[*outputs, *poll.outputs()], show_progress="hidden", queue=False)
    return poll.timer
