"""A training tab (LoRA, or fine-tuning: see gui/training/training_kinds.py): presets, an option search, the
essentials (model and network type, paths, the numbers nearly every run sets), the rest of the schema
form by group, accelerate settings, an action bar that stays in view, and the progress area.

Layout and wiring only: values are read into named dicts (`TabValues`) and handed to
`gui.training.lora_actions` (what the buttons do), `gui.training.presets`/`gui.training.preset_load` (files),
`gui.training.form_state` (the last form, restored on a page load) and `gui.training.network_types`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from backend.memory.estimate import plans
from backend.options.schema import Option, options_for
from gui.i18n import Translator
from gui.kohya_import.convert import IMPORTED_KINDS
from gui.markdown_text import md_list
from gui.plain_text import plain_info
from gui.training import form_state, lora_actions, presets
from gui.training.accelerate_form import AccelerateForm, accelerate_problems, build_accelerate_form
from gui.training.lora_actions import TabValues
from gui.training.memory_panel import build_memory_panel, wire_memory_panel
from gui.training.model_types import model_type_choices
from gui.training.network_types import (
    DEFAULT_TYPE,
    NETWORK_ARGS,
    NETWORK_TYPES,
    NetworkArg,
    decompose,
    field_text,
)
from gui.training.option_search import JUMP_JS, hidden_note, network_type_label, search_entries
from gui.training.progress_panel import build_progress_panel
from gui.training.schema_form import ESSENTIALS, FIELD_CLASS, UNSET, SchemaForm, build_form, widget_label
from gui.training.tab_wiring import (
    PromptFileRow,
    wire_actions,
    wire_autosave,
    wire_presets,
    wire_prompt_file,
    wire_selectors,
)
from gui.training.training_kinds import (
    LORA,
    MODEL_SLOT,
    NETWORK_ARGS_SLOT,
    NETWORK_SLOT,
    PROMPT_FILE_SLOT,
    SELECTOR_OPTIONS,
    TrainingKind,
    kind_options,
)

__all__ = ["SELECTOR_OPTIONS", "LoraTab", "build_lora_tab", "tab_options"]


def tab_options(kind: TrainingKind = LORA) -> dict[str, Option]:
    """Every option of the tab's commands that the form shows (command-specific ones are toggled),
    with the kind's choices and starting values (gui/training/training_kinds.py)."""
    return kind_options(kind)


@dataclass
class LoraTab:
    form: SchemaForm
    accelerate: AccelerateForm
    model_type: gr.Radio
    network_type: gr.Dropdown | None  # None in tabs without networks
    net_fields: dict[str, gr.components.Component] = field(default_factory=dict)
    net_boxes: dict[str, gr.Column] = field(default_factory=dict)
    preset_chooser: gr.Dropdown | None = None
    kind: TrainingKind = LORA
    preset_message: gr.Markdown | None = None

    def preset_choices(self) -> gr.Dropdown:
        """The preset list as it is on disk now (for page loads: files may have changed since start)."""
        return gr.Dropdown(choices=list(self.list_presets()))

    def list_presets(self) -> dict[str, Path]:
        return presets.list_presets(self.kind.shipped_presets, self.kind.user_presets)

    @property
    def inputs(self) -> set[gr.components.Component]:
        return (
            self.form.components | self.accelerate.components | set(self.net_fields.values())
            | {self.model_type} | ({self.network_type} if self.network_type is not None else set())
        )  # fmt: skip

    @property
    def outputs(self) -> list[Any]:
        """Everything `update` may change."""
        return [*self.inputs, *self.net_boxes.values(), *self.model_visibility(self.kind.default_model_type)]

    def read(self, data: Mapping[Any, Any], problems: list[tuple[str, str]] | None = None) -> TabValues:
        """The tab's values; text a field cannot hold (e.g. an unclosed quote) is left out and, with
        `problems`, reported there as (option name, what is wrong)."""
        net: dict[str, Any] = {}
        for name, component in self.net_fields.items():
            value = data.get(component)
            if isinstance(value, str):
                value = value.strip()
            if value not in (None, "", UNSET, False):
                net[name] = value
        return TabValues(
            options=self.form.read(data, [] if problems is None else problems),
            model_type=data.get(self.model_type) or self.kind.default_model_type,
            network_type=(data.get(self.network_type) if self.network_type is not None else None) or DEFAULT_TYPE,
            network_fields=net,
            accelerate=self.accelerate.read(data),
            kind=self.kind,
        )

    def checked(self, data: Mapping[Any, Any], t: Translator) -> tuple[TabValues, list[str]]:
        """The values and what is wrong with the fields the schema validator does not see (in the UI
        language, naming each field): unreadable text and the accelerate settings."""
        bad: list[tuple[str, str]] = []
        values = self.read(data, bad)
        problems = [t.t("ui.field_problem", field=widget_label(t, name), problem=error) for name, error in bad]
        return values, problems + accelerate_problems(values.accelerate, t)

    def update(self, tab: TabValues) -> dict[gr.components.Component, Any]:
        """Widget values (and network field visibility) for `tab`; what it does not name is reset."""
        updates: dict[gr.components.Component, Any] = {
            **self.accelerate.update(tab.accelerate),
            self.model_type: tab.model_type,
        }
        updates.update(self.model_visibility(tab.model_type))
        if not self.kind.networks:
            return {**updates, **self.form.update(tab.options)}
        # One way in for every source (form, preset, kohya_ss import): the module and args they stand
        # for, split into the selector, its fields and the free-text rest.
        split = decompose(*tab.network(), tab.network_type)
        updates.update(self.form.update({**tab.options, "network_args": split.extra or None}))
        updates[self.network_type] = split.network_type
        for name, component in self.net_fields.items():
            value = split.fields.get(name)
            kind = NETWORK_ARGS[name].kind
            updates[component] = bool(value) if kind == "bool" else UNSET if value is None else field_text(name, value)
        updates.update(self.network_visibility(split.network_type))
        return updates

    def network_visibility(self, network_type: str) -> dict[gr.components.Component, Any]:
        shown = NETWORK_TYPES.get(network_type, NETWORK_TYPES[DEFAULT_TYPE]).args
        return {box: gr.Column(visible=name in shown) for name, box in self.net_boxes.items()}

    def model_visibility(self, model_type: str) -> dict[gr.components.Component, Any]:
        """Show the options the model type's command takes, of those not every command of the tab takes, less
        those only other model types of that command use (Chroma: --clip_l)."""
        accepted = options_for(self.kind.command_for(model_type))
        unused = set(self.kind.model_type(model_type).unused_options)
        commands = dict.fromkeys(self.kind.commands.values())
        common = set.intersection(*(set(options_for(command)) for command in commands))
        return {box: gr.Column(visible=name in accepted and name not in unused)
                for name, box in self.form.boxes.items() if name not in common}

    def from_preset(self, loaded: presets.Preset) -> TabValues:
        """A whole form from a checked preset (a saved form, a run's form): defaults where it is silent."""
        return TabValues(
            options=dict(loaded.values),
            model_type=loaded.gui.get("model_type", self.kind.default_model_type),
            network_type=loaded.gui.get("network_type", DEFAULT_TYPE),
            accelerate=dict(loaded.gui.get("accelerate") or {}), kind=self.kind,
        )  # fmt: skip

    def restored(self) -> tuple[presets.Preset | None, str]:
        """The form a page shows and the message key saying where it comes from: the running run's own form
        when this tab started it, else the form as it was last left (gui/training/form_state.py), else None
        (the defaults)."""
        if lora_actions.RUNNER.running:
            loaded = form_state.run_form(lora_actions.RUNNER.meta(), self.kind)
            if loaded is not None:
                return loaded, "ui.form_restored_run"
        return form_state.load_form(self.kind), "ui.form_restored"

    def served_values(self) -> dict[Any, Any]:
        """The widget values the page is served with (gui/page_values.py): the restored form's, else the fields a
        new form's model type (and network type) uses, the others hidden as a model type change hides them."""
        loaded, _ = self.restored()
        if loaded is not None:
            return self.update(self.from_preset(loaded))
        shown = self.model_visibility(self.kind.default_model_type)
        return shown | (self.network_visibility(DEFAULT_TYPE) if self.kind.networks else {})

    def restore_note(self, t: Translator) -> dict[Any, Any]:
        """After a page load: say where the form shown comes from. A run's form shown becomes the saved
        form, the form as shown, which each edit is patched into (tab_wiring.wire_autosave)."""
        loaded, note = self.restored()
        if loaded is None:
            return {self.preset_message: gr.skip()}  # (an empty dict would count as one output value)
        if note == "ui.form_restored_run":
            form_state.save_form(self.kind, self.from_preset(loaded).form_data())
        lines = [t.t(note)]
        if loaded.problems:
            lines.append(t.t("ui.form_restore_skipped") + "\n" + md_list(loaded.problems))
        return {self.preset_message: "\n\n".join(lines)}


def _net_widget(arg: NetworkArg, t: Translator, kind: TrainingKind) -> gr.components.Component:  # kinds with networks
    common = {"label": f"{t.t(f'ui.netarg.{arg.name}')} ({arg.name})", "elem_id": kind.elem(f"netarg_{arg.name}"),
              "elem_classes": [FIELD_CLASS]}  # fmt: skip
    if arg.kind == "bool":
        return gr.Checkbox(value=False, **common)
    if arg.kind == "choice":
        # LyCORIS also takes a preset file (preset=my_preset.toml): a value outside the list is kept as
        # typed (Gradio would otherwise refuse every later callback without naming the field).
        return gr.Dropdown(choices=[(t.t("ui.not_set"), UNSET), *arg.choices], value=UNSET, allow_custom_value=True,
                           **common)  # fmt: skip
    return gr.Textbox(value="", **common)  # empty = not passed (see schema_form on optional numbers)


def build_lora_tab(
    t: Translator,
    browse: Callable[[str, bool], str] | None,
    defaults: Mapping[str, Any] | None = None,
    kind: TrainingKind = LORA,
    before_form: Callable[[], None] | None = None,
) -> LoraTab:
    """The tab for `kind` in the current Blocks; `before_form` renders extra content above the form."""
    holders: dict[str, Any] = {"net": ({}, {})}
    options = tab_options(kind)

    def model_selector() -> None:
        holders["model_type"] = gr.Radio(
            choices=model_type_choices(t, kind.model_types), value=kind.default_model_type,
            label=t.t("ui.model_type"), info=plain_info(t.t(f"ui.model_type_info.{kind.key}")),
            elem_id=kind.elem("model_type"), elem_classes=[FIELD_CLASS],
        )  # fmt: skip

    def network_selector() -> None:
        choices = [(network_type_label(t, name), name) for name in NETWORK_TYPES]
        holders["network_type"] = gr.Dropdown(
            choices=choices, value=DEFAULT_TYPE, label=t.t("ui.network_type"),
            info=plain_info(t.t("ui.network_type_info")), elem_id=kind.elem("network_type"), elem_classes=[FIELD_CLASS],
        )  # fmt: skip

    def network_fields() -> None:  # the chosen type's network_args, shown under the network's shape
        shown = NETWORK_TYPES[DEFAULT_TYPE].args
        fields, boxes = {}, {}
        with gr.Row(equal_height=False):
            for name, arg in NETWORK_ARGS.items():
                with gr.Column(min_width=200, visible=name in shown) as box:
                    fields[name] = _net_widget(arg, t, kind)
                boxes[name] = box
        holders["net"] = (fields, boxes)

    def prompt_file_row() -> None:  # LECO: a commented starting prompt file (gui/training/leco_prompt_files.py)
        holders["prompt_file"] = _prompt_file_row(t, kind)

    slots = {MODEL_SLOT: model_selector, PROMPT_FILE_SLOT: prompt_file_row}
    if kind.networks:
        slots |= {NETWORK_SLOT: network_selector, NETWORK_ARGS_SLOT: network_fields}

    preset_controls = _preset_row(t, browse, kind)
    search, search_note = _search_box(t, kind, options)
    if before_form is not None:
        before_form()
    form = build_form(options, t, browse, None, defaults, kind.id_prefix, kind.essential_rows, slots)
    with gr.Accordion(t.t("ui.accelerate"), open=False, elem_id=kind.elem("group_accelerate"),
                      elem_classes=["opt-group"]):  # fmt: skip
        accelerate = build_accelerate_form(t, kind.id_prefix)
    tab = LoraTab(
        form, accelerate, holders["model_type"], holders.get("network_type"), *holders["net"], preset_controls[0], kind,
        preset_controls[5],
    )  # fmt: skip
    # the memory planner plans the image commands (backend/memory), not video runs
    memory = build_memory_panel(t, kind.elem) if all(plans(c) for c in kind.commands.values()) else None
    search.select(None, inputs=search, js=JUMP_JS)
    # A field hidden for the chosen model or network type: say which types it belongs to.
    selectors = [tab.model_type, *([tab.network_type] if tab.network_type is not None else [])]
    search.select(
        lambda value, model, network=None: hidden_note(value, model, network, kind, t),
        inputs=[search, *selectors], outputs=search_note, queue=False,
    )  # fmt: skip
    for selector in selectors:  # the note is about the types chosen when it was written
        selector.change(lambda: "", outputs=search_note, queue=False)
    wire_selectors(tab)
    if memory is not None:
        wire_memory_panel(tab, memory, t)
    bar_status = wire_actions(tab, t)
    wire_presets(tab, t, *preset_controls)
    autosave_lock = wire_autosave(tab)
    if "prompt_file" in holders:
        wire_prompt_file(tab, holders["prompt_file"], t, autosave_lock)
    build_progress_panel(t, lora_actions.RUNNER, kind.key, kind, bar_status)
    return tab


def _prompt_file_row(t: Translator, kind: TrainingKind) -> PromptFileRow:
    """Which example, where to write it, the button, and what came of it."""
    with gr.Group(elem_id=kind.elem("prompt_file_row")):
        with gr.Row(equal_height=True):
            template = gr.Radio(
                choices=[(t.t(f"ui.leco_prompts.template_{name}"), name) for name in ("erase", "slider")],
                value="erase", label=t.t("ui.leco_prompts.template"), scale=3, elem_id=kind.elem("prompt_template"),
            )  # fmt: skip
            where = gr.Textbox(label=t.t("ui.leco_prompts.where"), placeholder=t.t("ui.leco_prompts.where_placeholder"),
                               scale=3, elem_id=kind.elem("prompt_where"))  # fmt: skip
            create = gr.Button(t.t("ui.leco_prompts.create"), scale=1, elem_id=kind.elem("prompt_new"))
        message = gr.Markdown(elem_id=kind.elem("prompt_message"))
    return PromptFileRow(template, where, create, message)


def _search_box(t: Translator, kind: TrainingKind, options: Mapping[str, Option]) -> tuple[gr.Dropdown, gr.Markdown]:
    essentials = kind.elem(f"group_{ESSENTIALS}")
    extra = [(t.t("ui.model_type"), "Model type", "model_type", f"{essentials} {kind.elem('model_type')}")]
    if kind.networks:
        extra.append((t.t("ui.network_type"), "Network type", "network_type", f"{essentials} {kind.elem('network_type')}"))
        extra += [(t.t(f"ui.netarg.{name}"), name.replace("_", " "), f"network_args {name}", f"{essentials} {kind.elem('netarg_' + name)}")
                  for name in NETWORK_ARGS]  # fmt: skip
    accelerate = kind.elem("group_accelerate")
    for name in ("mixed_precision", "num_processes", "num_cpu_threads_per_process", "num_machines", "gpu_ids",
                 "main_process_port", "dynamo_backend", "multi_gpu"):  # fmt: skip
        extra.append((t.t(f"ui.accelerate.{name}"), "accelerate " + name.replace("_", " "), f"accelerate {name}",
                      f"{accelerate} {kind.elem('acc_' + name)}"))  # fmt: skip
    entries = search_entries(options, kind.essentials, t, kind.id_prefix, extra)
    search = gr.Dropdown(
        choices=entries, value=None, label=t.t("ui.search_option"), info=plain_info(t.t("ui.search_option_info")),
        filterable=True, elem_id=kind.elem("option_search"), elem_classes=["option-search"],
    )  # fmt: skip
    return search, gr.Markdown(elem_id=kind.elem("option_search_note"))


PresetControls = tuple[gr.Dropdown, gr.Button, gr.Textbox, gr.Button, gr.Button, gr.Markdown, gr.Textbox, gr.Button]


def _preset_row(t: Translator, browse: Callable[[str, bool], str] | None, kind: TrainingKind) -> PresetControls:
    found = presets.list_presets(kind.shipped_presets, kind.user_presets)
    with gr.Group():
        with gr.Row(equal_height=True):
            chooser = gr.Dropdown(choices=list(found), value=None, label=t.t("ui.preset"),
                                  scale=3, elem_id=kind.elem("preset_select"))  # fmt: skip
            load = gr.Button(t.t("ui.load_preset"), scale=1, elem_id=kind.elem("preset_load"))
            name = gr.Textbox(label=t.t("ui.preset_name"), placeholder=t.t("ui.preset_name_placeholder"), scale=3,
                              elem_id=kind.elem("preset_name"))  # fmt: skip
            save = gr.Button(t.t("ui.save_preset"), scale=1, elem_id=kind.elem("preset_save"))
            overwrite = gr.Button(t.t("ui.overwrite_preset"), variant="stop", scale=1, visible=False,
                                  elem_id=kind.elem("preset_overwrite"))  # fmt: skip
        # kohya_ss configs of the IMPORTED_KINDS import (gui/kohya_import), each on its own page
        with gr.Row(equal_height=True, visible=kind.key in IMPORTED_KINDS):
            info = "" if kind.key not in IMPORTED_KINDS else t.t(
                "ui.kohya_config_info" if kind.key == "lora" else f"ui.kohya_config_info_{kind.key}")
            kohya_path = gr.Textbox(label=t.t("ui.kohya_config"), info=plain_info(info), scale=6,
                                    elem_id=kind.elem("kohya_config_path"))  # fmt: skip
            if browse is not None:
                pick = gr.Button(t.t("ui.browse"), scale=1, elem_id=kind.elem("kohya_config_browse"))
                pick.click(lambda current: browse(current, False), inputs=kohya_path, outputs=kohya_path)
            kohya_import = gr.Button(t.t("ui.kohya_import"), scale=1, elem_id=kind.elem("kohya_import"))
        message = gr.Markdown(elem_id=kind.elem("preset_message"))
    return chooser, load, name, save, overwrite, message, kohya_path, kohya_import
