"""What a training tab's controls do when used: the model/network selectors, the action bar, the
preset row and the autosave of the form (the layout: lora_tab.py)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from backend.options import OptionError
from gui.i18n import Translator
from gui.markdown_text import md_t
from gui.queue.queue_line import wake_queue_line
from gui.runs.poll_timers import wake_after
from gui.training import form_state, leco_prompt_files, lora_actions, presets
from gui.training.accelerate_form import accelerate_problems
from gui.training.command_builder import validate_values
from gui.training.lora_actions import TabValues, problems_text
from gui.training.preset_load import name_for_chosen, preset_outcome, save_target

if TYPE_CHECKING:
    from gui.training.lora_tab import LoraTab


def wire_selectors(tab: LoraTab) -> None:
    if tab.network_type is not None:
        net_boxes = list(tab.net_boxes.values())
        tab.network_type.change(tab.network_visibility, inputs=tab.network_type, outputs=net_boxes)
    model_boxes = list(tab.model_visibility(tab.kind.default_model_type))
    if model_boxes:  # none where every model type runs the same command (video): nothing to show or hide
        tab.model_type.change(tab.model_visibility, inputs=tab.model_type, outputs=model_boxes)


def wire_actions(tab: LoraTab, t: Translator) -> gr.HTML:
    """The action bar (sticky at the bottom of the window while the form scrolls: gui/app.py CSS) with
    the run's status, then the preflight report and the command; returns the bar's status element."""
    key = tab.kind.key
    with gr.Column(elem_classes=["action-bar"], elem_id=f"{key}_action_bar"):
        with gr.Row(equal_height=True):  # min_width: the seven stay in one row (Gradio's 160 px wrapped one)
            preflight = gr.Button(t.t("ui.preflight"), size="md", min_width=120, elem_id=f"{key}_preflight")
            start = gr.Button(t.t("ui.start"), variant="primary", size="md", min_width=120, elem_id=f"{key}_start")
            queue = gr.Button(t.t("ui.queue.add"), size="md", min_width=120, elem_id=f"{key}_queue")
            stop = gr.Button(t.t("ui.stop"), variant="stop", size="md", min_width=120, elem_id=f"{key}_stop")
            show = gr.Button(t.t("ui.print_command"), size="md", min_width=120, elem_id=f"{key}_print")
            export = gr.Button(t.t("ui.export_command"), size="md", min_width=120, elem_id=f"{key}_export")
            tensorboard = gr.Button(t.t("ui.tensorboard"), size="md", min_width=120, elem_id=f"{key}_tensorboard")
        bar_status = gr.HTML(elem_id=f"{key}_bar_status")
        message = gr.Markdown(elem_id=f"{key}_message", elem_classes=["action-message"])
    report = gr.Markdown(elem_id=f"{key}_preflight_report")
    with gr.Accordion(t.t("ui.command"), open=False, visible=False) as command_box:
        bash = gr.Code(label="bash", language="shell", interactive=False, elem_id=f"{key}_command_bash")
        cmd = gr.Code(label="cmd.exe", interactive=False, elem_id=f"{key}_command_cmd")
        toml = gr.Code(label="TOML", interactive=False, elem_id=f"{key}_command_toml")
    # The time in the file names Print command showed, so the next Start or Export writes those very
    # files; either uses it up, so a later Start never overwrites an exported config.
    planned = gr.State(None)

    def checked(data: dict[Any, Any]) -> tuple[TabValues, str | None]:
        values, problems = tab.checked(data, t)
        if not problems:
            return values, None
        try:  # all problems at once: the schema's too
            validate_values(values.command, values.run_options())
        except OptionError as error:
            problems += error.messages
        return values, problems_text(t, problems)

    def on_print(data: dict[Any, Any]) -> dict[Any, Any]:
        values, refused = checked(data)
        when = time.time()
        text = lora_actions.print_command(values, t, when) if refused is None else lora_actions.CommandText("", "", "", refused)
        shown = bool(text.bash)
        return {message: text.message, bash: text.bash, cmd: text.cmd, toml: text.toml, planned: when if shown else None,
                command_box: gr.Accordion(visible=shown, open=shown)}  # fmt: skip

    def on_start(data: dict[Any, Any]) -> dict[Any, Any]:
        values, refused = checked(data)
        if refused is not None:
            return {message: refused}
        return {message: lora_actions.start(values, t, when=data.get(planned)), planned: None}

    def on_queue(data: dict[Any, Any]) -> dict[Any, Any]:
        values, refused = checked(data)  # the checks Start makes, now rather than when its turn comes
        if refused is not None:
            return {message: refused}
        return {message: lora_actions.add_to_queue(values, t, when=data.get(planned)), planned: None}

    def on_export(data: dict[Any, Any]) -> dict[Any, Any]:
        values, refused = checked(data)
        if refused is not None:
            return {message: refused}
        return {message: lora_actions.export(values, t, when=data.get(planned)), planned: None}

    def on_preflight(data: dict[Any, Any]) -> str:
        values, refused = checked(data)
        return refused or lora_actions.preflight(values, t)

    def on_tensorboard(data: dict[Any, Any]) -> str:
        values, refused = checked(data)
        return refused or lora_actions.open_tensorboard(values, t)

    inputs = tab.inputs
    wake_after(start.click(on_start, inputs=inputs | {planned}, outputs=[message, planned]))
    queued = queue.click(on_queue, inputs=inputs | {planned}, outputs=[message, planned])
    wake_after(queued)  # a queued run may start at once: the progress panel follows it
    wake_queue_line(queued)
    stop.click(lambda: lora_actions.stop(t), outputs=message)
    preflight.click(on_preflight, inputs=inputs, outputs=report)
    show.click(on_print, inputs=inputs, outputs=[message, bash, cmd, toml, command_box, planned])
    export.click(on_export, inputs=inputs | {planned}, outputs=[message, planned])
    tensorboard.click(on_tensorboard, inputs=inputs, outputs=message)
    return bar_status


def wire_presets(
    tab: LoraTab, t: Translator, chooser: gr.Dropdown, load: gr.Button, name: gr.Textbox,
    save: gr.Button, overwrite: gr.Button, message: gr.Markdown, kohya_path: gr.Textbox, kohya_import: gr.Button,
) -> None:  # fmt: skip
    outputs = [*tab.outputs, message]
    pending = gr.State(None)  # the preset file Save would replace, until the user confirms

    def on_load(data: dict[Any, Any]) -> dict[Any, Any]:
        found = tab.list_presets()
        chosen = data.get(chooser) or ""
        path = found.get(chosen)
        if path is None:
            return {message: t.t("ui.choose_preset")}
        loaded = presets.load_preset(path, tab.kind)
        current = tab.read(data)
        outcome = preset_outcome(loaded, path, chosen, current, tab.kind, t,
                                 accelerate_problems(loaded.gui.get("accelerate") or {}, t))  # fmt: skip
        if outcome.tab is None:  # a broken file changes nothing
            return {message: outcome.message}
        form_state.save_form(tab.kind, outcome.tab.form_data())
        return {**tab.update(outcome.tab), message: outcome.message}

    def on_save(data: dict[Any, Any], confirmed: bool) -> dict[Any, Any]:
        hide = gr.Button(visible=False)
        if confirmed:
            path = Path(data[pending]) if data.get(pending) else None
            if path is None:
                return {message: t.t("ui.preset_name_needed"), overwrite: hide, pending: None}
        else:
            target = save_target(data.get(name) or "", data.get(chooser), tab.list_presets(), tab.kind.user_presets)
            if target.path is None:
                return {message: t.t("ui.preset_name_needed"), overwrite: hide, pending: None}
            if target.exists:
                return {message: md_t(t, "ui.preset_exists", name=target.path.stem, path=target.path),
                        overwrite: gr.Button(visible=True), pending: str(target.path)}  # fmt: skip
            path = target.path
        values, problems = tab.checked(data, t)
        if problems:
            return {message: problems_text(t, problems), overwrite: hide, pending: None}
        try:
            presets.save_preset(path, values.preset_options(), values.gui_keys())
        except (OSError, ValueError) as error:
            return {message: md_t(t, "ui.preset_not_saved", path=path, error=error), overwrite: hide, pending: None}
        return {message: md_t(t, "ui.preset_saved", path=path), overwrite: hide, pending: None,
                chooser: gr.Dropdown(choices=list(tab.list_presets()), value=path.stem), name: path.stem}  # fmt: skip

    def on_choose(chosen: str | None) -> dict[Any, Any]:
        return {name: name_for_chosen(chosen, tab.list_presets(), tab.kind.user_presets),
                overwrite: gr.Button(visible=False), pending: None}  # fmt: skip

    def on_import(path: str) -> dict[Any, Any]:
        imported = lora_actions.import_kohya(path or "", t, kind=tab.kind)
        if imported.tab is None:
            return {message: imported.message}
        form_state.save_form(tab.kind, imported.tab.form_data())
        return {**tab.update(imported.tab), message: imported.message}

    save_inputs = tab.inputs | {chooser, name, pending}
    save_outputs = [message, chooser, name, overwrite, pending]
    load.click(on_load, inputs=tab.inputs | {chooser}, outputs=outputs)
    kohya_import.click(on_import, inputs=kohya_path, outputs=outputs)
    chooser.change(on_choose, inputs=chooser, outputs=[name, overwrite, pending])
    name.change(lambda: (gr.Button(visible=False), None), outputs=[overwrite, pending])
    save.click(lambda data: on_save(data, False), inputs=save_inputs, outputs=save_outputs)
    overwrite.click(lambda data: on_save(data, True), inputs=save_inputs, outputs=save_outputs)


def wire_autosave(tab: LoraTab) -> threading.Lock:
    """Keep the form on disk as the user changes it (gui/training/form_state.py): when a text field is left and
    when a choice is made, so a reload, a crashed browser or a restarted GUI comes back to it. Only
    the user's own edits trigger it (a preset load changes every field; it saves once itself).

    Each field has its own event sending that field alone, patched into the saved form (`save_field`). One
    event with every field as input made Gradio's page gather ~190 values per edit: about a second of browser
    CPU for each field left (docs/performance.md, "GUI pages"). The saved file is the form as shown: a page load
    that shows a running training's form, a preset load and a kohya_ss import write it whole."""
    lock = threading.Lock()  # two fields left in quick succession: patched one after the other
    for component in tab.inputs:
        trigger = component.blur if isinstance(component, gr.Textbox) else component.input
        trigger(partial(save_field, tab, component, lock), inputs=component, outputs=None, trigger_mode="always_last",
                queue=False, show_progress="hidden")  # fmt: skip
    return lock  # for fields filled by an action (wire_prompt_file), which no user edit saves


@dataclass(frozen=True)
class PromptFileRow:
    template: gr.Radio
    where: gr.Textbox
    create: gr.Button
    message: gr.Markdown


def wire_prompt_file(tab: LoraTab, row: PromptFileRow, t: Translator, lock: threading.Lock) -> None:
    """The LECO page's "new prompt file": write the chosen example (never over a file) and put its path in the
    prompts_file field, saved with the form as a user's edit is."""
    fields = tab.form.fields
    prompts_file = fields["prompts_file"]

    def on_create(data: dict[Any, Any]) -> dict[Any, Any]:
        made = leco_prompt_files.new_prompt_file(
            data[row.template], data[row.where], data.get(fields.get("output_dir"), ""),
            data.get(fields.get("output_name"), ""), t, data.get(tab.model_type),
        )  # fmt: skip
        if made.path is None:
            return {row.message: made.message}
        save_field(tab, prompts_file, lock, str(made.path))
        return {row.message: made.message, prompts_file: str(made.path)}

    inputs = {row.template, row.where, tab.model_type} | {fields[name] for name in ("output_dir", "output_name")
                                                          if name in fields}  # fmt: skip
    row.create.click(on_create, inputs=inputs, outputs=[row.message, prompts_file])


def save_field(tab: LoraTab, component: Any, lock: threading.Lock, value: Any) -> None:
    """The saved form with `component` now holding `value` (the page's initial values where none is saved)."""
    with lock:
        saved = form_state.load_form(tab.kind)
        if saved is None:
            data = {c: c.value for c in tab.inputs}
        else:
            shown = tab.update(tab.from_preset(saved))
            data = {c: _widget_value(shown[c]) if c in shown else c.value for c in tab.inputs}
        data[component] = value
        form_state.save_form(tab.kind, tab.read(data).form_data())


def _widget_value(update: Any) -> Any:
    """A widget's value in `LoraTab.update`'s result: the value, or that of a component given to extend its
    choices (gr.Dropdown(choices=..., value=...))."""
    return update.value if isinstance(update, gr.components.Component) else update
