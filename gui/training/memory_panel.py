"""A training tab's "Memory" panel: the memory planner's breakdown of the run in the form (backend/memory,
torch-free), a card-size chooser (8-48 GB, plus the GPUs nvidia-smi reports), "Fit my GPU" (the cheapest
savers that make the run fit, `backend.memory.fit.fit_to_card`) and "Apply" (the proposed values written
into the form's fields, and the form saved as a preset load saves it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from backend.memory.estimate import Estimate, gib
from backend.memory.estimate import estimate as plan_estimate
from backend.memory.fit import CARD_SIZES_GB, GB, PLAN_ERRORS, FitResult, fit_to_card
from gui.gpus import detected_gpus
from gui.i18n import Translator
from gui.markdown_text import md_code, md_escape, md_t
from gui.training import form_state
from gui.training.lora_actions import TabValues

if TYPE_CHECKING:
    from gui.training.lora_tab import LoraTab


def card_choices(t: Translator) -> list[tuple[str, str]]:
    """(label, bytes as text): the detected GPUs first, then the usual card sizes."""
    choices = [(t.t("ui.memory.detected_card", index=i, name=name, size=f"{size / GB:.0f}"), str(size))
               for i, (name, size) in enumerate(detected_gpus())]  # fmt: skip
    return choices + [(f"{size} GB", str(size * GB)) for size in CARD_SIZES_GB]


def breakdown_markdown(planned: Estimate, t: Translator) -> str:
    """The estimate as a table (one row per part, GPU and host memory), the peaks and the planner's notes."""
    rows = [f"| {t.t('ui.memory.part')} | {t.t('ui.memory.gpu')} | {t.t('ui.memory.host')} | {t.t('ui.memory.detail')} |",
            "|---|---:|---:|---|"]  # fmt: skip
    for line in planned.lines:
        host = gib(line.host) + (" *" if line.transient else "") if line.host else "-"
        rows.append(
            f"| {md_escape(line.label)} | {gib(line.gpu) if line.gpu else '-'} | {host} | {md_escape(line.detail)} |"
        )
    rows += [
        "",
        md_t(t, "ui.memory.peaks", gpu=gib(planned.gpu_peak), need=gib(planned.card_need()), host=gib(planned.host_peak)),
        "",
        t.t("ui.memory.transient_note"),
    ]  # fmt: skip
    rows += [f"- {md_escape(note)}" for note in planned.notes]
    return "\n".join(rows)


def fit_markdown(fitted: FitResult, t: Translator) -> str:
    card = gib(fitted.card_bytes)
    before, after = gib(fitted.before.card_need()), gib(fitted.after.card_need())
    if not fitted.changes:
        key = "ui.memory.fits_already" if fitted.fits else "ui.memory.no_saver_left"
        return f"### {md_t(t, key, card=card, need=before)}"
    head = md_t(t, "ui.memory.fit_found" if fitted.fits else "ui.memory.fit_not_enough", card=card, before=before,
                after=after)  # fmt: skip
    rows = [f"### {head}", "", f"| {t.t('ui.memory.option')} | {t.t('ui.memory.new_value')} | {t.t('ui.memory.why')} |",
            "|---|---|---|"]  # fmt: skip
    for change in fitted.changes:
        value = " ".join(map(str, change.value)) if isinstance(change.value, list) else change.value  # as the field
        rows.append(f"| {md_code(change.option)} | {md_code(value)} | {md_escape(change.reason)} |")
    rows += ["", t.t("ui.memory.apply_hint" if fitted.fits else "ui.memory.apply_hint_partial")]
    return "\n".join(rows)


@dataclass
class MemoryPanel:
    card: gr.Dropdown
    estimate: gr.Button
    fit: gr.Button
    apply: gr.Button
    report: gr.Markdown
    proposal: gr.Markdown
    changes: gr.State


def build_memory_panel(t: Translator, elem: Any) -> MemoryPanel:
    """The panel's widgets (in the current Blocks; `elem` makes the tab's element ids)."""
    choices = card_choices(t)
    with gr.Accordion(
        t.t("ui.memory.title"), open=False, elem_id=elem("group_memory"), elem_classes=["opt-group"]
    ):
        gr.Markdown(t.t("ui.memory.intro"))
        with gr.Row(equal_height=True):
            card = gr.Dropdown(choices=choices, value=choices[0][1], label=t.t("ui.memory.card"), scale=3,
                               elem_id=elem("memory_card"))  # fmt: skip
            estimate = gr.Button(t.t("ui.memory.estimate"), scale=1, elem_id=elem("memory_estimate"))
            fit = gr.Button(t.t("ui.memory.fit"), variant="primary", scale=1, elem_id=elem("memory_fit"))
            apply = gr.Button(t.t("ui.memory.apply"), scale=1, visible=False, elem_id=elem("memory_apply"))
        proposal = gr.Markdown(elem_id=elem("memory_proposal"))
        report = gr.Markdown(elem_id=elem("memory_report"))
    return MemoryPanel(card, estimate, fit, apply, report, proposal, gr.State(None))


def _problem(t: Translator, error: Exception) -> str:
    return md_t(t, "ui.memory.unavailable", reason=error)


def wire_memory_panel(tab: LoraTab, panel: MemoryPanel, t: Translator) -> None:
    def on_estimate(data: dict[Any, Any]) -> dict[Any, Any]:
        values = tab.read(data)
        try:
            planned = plan_estimate(values.command, values.run_options(), "cuda")
        except PLAN_ERRORS as error:
            return {panel.report: _problem(t, error)}
        return {panel.report: breakdown_markdown(planned, t)}

    def on_fit(data: dict[Any, Any]) -> dict[Any, Any]:
        values = tab.read(data)
        hidden = gr.Button(visible=False)
        try:
            fitted = fit_to_card(values.command, values.run_options(), int(data[panel.card]))
        except PLAN_ERRORS as error:
            return {panel.proposal: _problem(t, error), panel.apply: hidden, panel.changes: None}
        usable = [[c.option, c.value] for c in fitted.changes if c.option in tab.form.fields]
        return {
            panel.proposal: fit_markdown(fitted, t),
            panel.report: breakdown_markdown(fitted.after, t),
            panel.apply: gr.Button(visible=bool(usable)),
            panel.changes: usable or None,
        }

    def on_apply(data: dict[Any, Any]) -> dict[Any, Any]:
        changes = data.get(panel.changes) or []
        values = tab.read(data)
        changed = TabValues(
            options={**values.options, **dict(changes)}, model_type=values.model_type,
            network_type=values.network_type, network_fields=values.network_fields, accelerate=values.accelerate,
            kind=values.kind,
        )  # fmt: skip
        form_state.save_form(tab.kind, changed.form_data())
        names = ", ".join(f"`{name}`" for name, _ in changes)
        try:
            after = breakdown_markdown(plan_estimate(changed.command, changed.run_options(), "cuda"), t)
        except PLAN_ERRORS as error:
            after = _problem(t, error)
        return {
            **tab.update(changed),
            panel.proposal: md_t(t, "ui.memory.applied", count=len(changes)) + f" {names}" if changes else "",
            panel.report: after,
            panel.apply: gr.Button(visible=False),
            panel.changes: None,
        }

    inputs = tab.inputs
    panel.estimate.click(on_estimate, inputs=inputs, outputs=panel.report)
    panel.fit.click(on_fit, inputs=inputs | {panel.card}, outputs=[panel.proposal, panel.report, panel.apply,
                                                                    panel.changes])  # fmt: skip
    panel.apply.click(on_apply, inputs=inputs | {panel.changes},
                      outputs=[*tab.outputs, panel.proposal, panel.report, panel.apply, panel.changes])  # fmt: skip
