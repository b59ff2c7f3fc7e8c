"""The Quick LoRA page (route "quick"): a base model, a folder of images and a trigger word to a LoRA, step by step.

1. what to train (the model's family is said as soon as the field is left), 2. Check (the images, their captions;
asks before captioning those without), 3. Prepare (the training folder in the work folder, the settings with a reason
each), then "Open in LoRA page" (the same settings as the ordinary form) or "Train now" with the LoRA page's progress
panel (samples included), or "Add to queue". What the buttons do is gui/quick/quick_actions.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from gui.gpus import largest_gpu_mib
from gui.i18n import Translator
from gui.markdown_text import Markdown
from gui.plain_text import plain_info
from gui.queue.queue_line import wake_queue_line
from gui.quick import choices as qc
from gui.quick import quick_actions as actions
from gui.runs.poll_timers import wake_after
from gui.tools.tool_form import TOOL_RUNNER, build_tool_panel
from gui.training import lora_actions
from gui.training.progress_panel import build_progress_panel
from gui.training.training_kinds import LORA

# "Open in LoRA page": the main page's address from this page's own (a root_path prefix kept).
GO_TO_LORA_JS = """(route) => {
  if (!route) return;
  window.location.assign(window.location.pathname.replace(/\\/quick\\/?$/, "/"));
}"""
FIELDS = ("model", "folder", "trigger", "kind", "class_word", "card", "work", "style", "captioner_model",
          "resolution", "epochs", "repeats")  # fmt: skip


def detected_card(t: Translator) -> tuple[str, str]:
    """(the card size to start from, the note under the selector) from nvidia-smi."""
    mib = largest_gpu_mib()
    if mib is None:
        return "cpu", t.t("ui.quick.card_none")
    return qc.card_of_memory(mib), t.t("ui.quick.card_found", gb=round(mib / 1024, 1))


def _text(t: Translator, name: str, **extra: Any) -> gr.Textbox:
    return gr.Textbox(label=t.t(f"ui.quick.{name}"), info=plain_info(t.t(f"ui.quick.{name}_info")),
                      elem_id=f"quick_{name}", **extra)  # fmt: skip


def build_quick_page(t: Translator, picker: Callable[[str, bool], str] | None) -> None:
    """The page's components and events in the current Blocks (inside a `TabPolling.tab`)."""
    gr.Markdown(f"## {t.t('ui.page.quick')}\n{t.t('ui.quick.intro')}")
    fields: dict[str, gr.components.Component] = {}
    card, card_info = detected_card(t)
    with gr.Group():
        gr.Markdown(f"### {t.t('ui.quick.step1')}")
        with gr.Row(equal_height=False):
            fields["model"] = _text(t, "model", scale=3)
            fields["folder"] = _text(t, "folder", scale=3)
        model_found = gr.Markdown(elem_id="quick_model_found")
        with gr.Row(equal_height=False):
            fields["trigger"] = _text(t, "trigger")
            fields["kind"] = gr.Radio([(t.t(f"ui.quick.kind.{kind}"), kind) for kind in qc.KINDS], value="character",
                                      label=t.t("ui.quick.kind"), info=plain_info(t.t("ui.quick.kind_info")),
                                      elem_id="quick_kind")  # fmt: skip
            fields["class_word"] = _text(t, "class_word", placeholder=qc.CLASS_WORDS["character"])
        with gr.Row(equal_height=False):
            fields["card"] = gr.Dropdown([(t.t(f"ui.quick.card.{size}"), size) for size in qc.CARDS], value=card,
                                         label=t.t("ui.quick.card"), info=plain_info(card_info),
                                         elem_id="quick_card")  # fmt: skip
            fields["work"] = _text(t, "work", scale=2)
        with gr.Accordion(t.t("ui.quick.more"), open=False, elem_id="quick_more"):
            with gr.Row(equal_height=False):
                fields["style"] = gr.Dropdown([(t.t(f"ui.quick.style.{style}"), style) for style in qc.STYLES],
                                              value="auto", label=t.t("ui.quick.style"),
                                              info=plain_info(t.t("ui.quick.style_info")), elem_id="quick_style")  # fmt: skip
                fields["captioner_model"] = _text(t, "captioner_model", scale=2)
            with gr.Row(equal_height=False):
                fields["resolution"] = _text(t, "resolution")
                fields["epochs"] = _text(t, "epochs")
                fields["repeats"] = _text(t, "repeats")
        if picker is not None:
            with gr.Row():
                for name, folder in (("model", False), ("folder", True), ("work", True)):
                    button = gr.Button(f"{t.t('ui.browse')}: {t.t(f'ui.quick.{name}')}", size="sm",
                                       elem_id=f"quick_browse_{name}")  # fmt: skip
                    button.click(
                        lambda current, f=folder: picker(current, f),
                        inputs=fields[name],
                        outputs=fields[name],
                    )
    inputs = [fields[name] for name in FIELDS]

    def read(*values: Any) -> actions.QuickInputs:
        return actions.QuickInputs(
            **{name: "" if value is None else str(value) for name, value in zip(FIELDS, values, strict=True)}
        )

    fields["model"].blur(
        lambda path: actions.model_note(t, str(path or "")), inputs=fields["model"], outputs=model_found
    )
    fields["kind"].change(lambda kind: gr.Textbox(placeholder=qc.CLASS_WORDS.get(kind, "")), inputs=fields["kind"],
                          outputs=fields["class_word"])  # fmt: skip

    with gr.Group():
        gr.Markdown(f"### {t.t('ui.quick.step2')}")
        check = gr.Button(t.t("ui.quick.check"), variant="primary", elem_id="quick_check")
        report = gr.Markdown(elem_id="quick_report")
        offer = gr.Markdown(elem_id="quick_offer")
        caption = gr.Button(t.t("ui.quick.caption"), visible=False, elem_id="quick_caption")
        caption_message = gr.Markdown(elem_id="quick_caption_message")
    with gr.Accordion(t.t("ui.quick.captioning_progress"), open=True, elem_id="quick_captioning"):
        build_tool_panel(t, "quick_captioning", TOOL_RUNNER)

    def checked(*values: Any) -> tuple[Any, ...]:
        outcome = actions.check(read(*values), t)
        return outcome.report, outcome.offer, gr.Button(visible=bool(outcome.offer)), outcome.work

    check.click(checked, inputs=inputs, outputs=[report, offer, caption, fields["work"]])
    wake_after(
        caption.click(
            lambda *values: actions.caption(read(*values), t), inputs=inputs, outputs=caption_message
        )
    )

    with gr.Group():
        gr.Markdown(f"### {t.t('ui.quick.step3')}")
        with gr.Row():
            prepare = gr.Button(t.t("ui.quick.prepare"), elem_id="quick_prepare")
            open_lora = gr.Button(t.t("ui.quick.open"), elem_id="quick_open")
            train = gr.Button(t.t("ui.quick.train"), variant="primary", elem_id="quick_train")
            queue = gr.Button(t.t("ui.queue.add"), elem_id="quick_queue")
            stop = gr.Button(t.t("ui.stop"), variant="stop", elem_id="quick_stop")
        summary = gr.Markdown(elem_id="quick_summary")
        route = gr.Textbox(visible=False, elem_id="quick_route")
    build_progress_panel(t, lora_actions.RUNNER, prefix="quick", kind=LORA)

    prepare.click(lambda *values: actions.prepare_text(read(*values), t), inputs=inputs, outputs=summary)

    def opened(*values: Any) -> tuple[Markdown, str]:
        return actions.open_in_lora(read(*values), t)

    open_lora.click(opened, inputs=inputs, outputs=[summary, route]).then(
        None, inputs=route, js=GO_TO_LORA_JS
    )
    wake_after(train.click(lambda *values: actions.train(read(*values), t), inputs=inputs, outputs=summary))
    queued = queue.click(lambda *values: actions.queue_run(read(*values), t), inputs=inputs, outputs=summary)
    wake_after(queued)  # a queued run may start at once: the progress panel follows it
    wake_queue_line(queued)
    stop.click(lambda: lora_actions.stop(t), outputs=summary)
