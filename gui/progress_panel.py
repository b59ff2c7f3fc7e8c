"""The progress area: status, progress bar, loss plot, sample images, log; polled from the runner.

A `gr.Timer` asks `runner.snapshot()` every second. The run lives in the GUI process, so a page
opened (or reopened) mid-run shows it at once. Plot and gallery are re-sent only when they change.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from gui.i18n import Translator
from gui.progress_view import (
    failure_text,
    finished_text,
    loss_frame,
    progress_html,
    sample_paths,
    status_text,
)
from gui.runner import TrainingRunner

POLL_SECONDS = 1.0
LOG_TAIL = 200


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


def build_progress_panel(t: Translator, runner: TrainingRunner, prefix: str = "lora") -> gr.Timer:
    """The panel in the current Blocks; element ids are `<prefix>_status`, `<prefix>_progress`, ..."""
    with gr.Group():
        status = gr.Textbox(label=t.t("ui.status"), interactive=False, elem_id=f"{prefix}_status")
        bar = gr.HTML(progress_html({}, t), elem_id=f"{prefix}_progress")
        outcome = gr.Markdown(elem_id=f"{prefix}_outcome")
    with gr.Row(equal_height=False):
        plot = gr.LinePlot(
            None, x="step", y="loss", color="series", label=t.t("ui.loss"),
            x_title=t.t("ui.step"), y_title=t.t("ui.loss"), color_title="", height=260, elem_id=f"{prefix}_loss_plot",
        )  # fmt: skip
        gallery = gr.Gallery(label=t.t("ui.samples"), columns=4, height=260, elem_id=f"{prefix}_samples")
    log = gr.Textbox(
        label=t.t("ui.log"), lines=10, max_lines=20, autoscroll=True, interactive=False, elem_id=f"{prefix}_log"
    )
    seen = gr.State({"samples": -1, "points": -1, "log": -1})

    def poll(last: dict[str, int]) -> tuple[Any, ...]:
        snapshot = runner.snapshot(tail=LOG_TAIL)
        samples = sample_paths(snapshot)
        points = len(snapshot["history"]["step"])
        now = {"samples": len(samples), "points": points, "log": snapshot["log_lines"]}
        result = (
            status_text(snapshot, t),
            progress_html(snapshot, t),
            failure_text(snapshot, t) or finished_text(snapshot, t),
            (loss_frame(snapshot, t) if points else None) if points != last["points"] else gr.skip(),
            _images(samples) if len(samples) != last["samples"] else gr.skip(),
            "\n".join(snapshot["log_tail"]) if now["log"] != last["log"] else gr.skip(),
            now,
        )
        return result

    timer = gr.Timer(POLL_SECONDS)
    # Polls must not queue behind a long preflight or pile up when the server is slow.
    timer.tick(poll, inputs=seen, outputs=[status, bar, outcome, plot, gallery, log, seen],
               show_progress="hidden", queue=False)  # fmt: skip
    return timer
