"""A training tab (LoRA, or fine-tuning: see gui/training_kinds.py): model and network type, the
schema form, accelerate settings, presets, the action buttons and the progress area.

Layout and wiring only: values are read into named dicts (`TabValues`) and handed to
`gui.lora_actions` (what the buttons do), `gui.presets` (files) and `gui.network_types`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr

from backend.options.schema import Option, options_for
from gui import lora_actions, presets
from gui.accelerate_form import AccelerateForm, build_accelerate_form
from gui.i18n import Translator
from gui.lora_actions import TabValues
from gui.network_types import DEFAULT_TYPE, NETWORK_ARGS, NETWORK_TYPES, NetworkArg, decompose
from gui.progress_panel import build_progress_panel
from gui.schema_form import UNSET, SchemaForm, build_form
from gui.training_kinds import LORA, MODEL_TYPES, TrainingKind

# Set by the model and network selectors rather than shown as fields.
SELECTOR_OPTIONS = ("v2", "network_module")


def tab_options(kind: TrainingKind = LORA) -> dict[str, Option]:
    """Every option of the tab's commands that the form shows (command-specific ones are toggled)."""
    merged: dict[str, Option] = {}
    for command in dict.fromkeys(kind.commands.values()):
        merged.update(options_for(command))
    return {
        name: replace(option, choices=kind.choice_limits[name]) if name in kind.choice_limits else option
        for name, option in merged.items()
        if not option.cli_only and not option.secret and name not in SELECTOR_OPTIONS
    }


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

    def read(self, data: Mapping[Any, Any]) -> TabValues:
        net: dict[str, Any] = {}
        for name, component in self.net_fields.items():
            value = data.get(component)
            if isinstance(value, str):
                value = value.strip()
            if value not in (None, "", UNSET, False):
                net[name] = value
        return TabValues(
            options=self.form.read(data),
            model_type=data.get(self.model_type) or "sd1",
            network_type=(data.get(self.network_type) if self.network_type is not None else None) or DEFAULT_TYPE,
            network_fields=net,
            accelerate=self.accelerate.read(data),
            kind=self.kind,
        )

    def update(self, tab: TabValues) -> dict[gr.components.Component, Any]:
        """Widget values (and network field visibility) for `tab`; what it does not name is reset."""
        updates: dict[gr.components.Component, Any] = {
            **self.accelerate.update(tab.accelerate),
            self.model_type: tab.model_type,
        }
        updates.update(self.model_visibility(tab.model_type))
        if not self.kind.networks:
            return {**updates, **self.form.update(tab.options)}
        split = decompose(tab.options.get("network_module"), tab.options.get("network_args"), tab.network_type)
        updates.update(self.form.update({**tab.options, "network_args": split.extra or None}))
        updates[self.network_type] = split.network_type
        for name, component in self.net_fields.items():
            value = split.fields.get(name)
            kind = NETWORK_ARGS[name].kind
            updates[component] = bool(value) if kind == "bool" else UNSET if value is None else str(value)
        updates.update(self.network_visibility(split.network_type))
        return updates

    def network_visibility(self, network_type: str) -> dict[gr.components.Component, Any]:
        shown = NETWORK_TYPES.get(network_type, NETWORK_TYPES[DEFAULT_TYPE]).args
        return {box: gr.Column(visible=name in shown) for name, box in self.net_boxes.items()}

    def model_visibility(self, model_type: str) -> dict[gr.components.Component, Any]:
        """Show the options the model type's command takes, of those not every command of the tab takes."""
        accepted = options_for(self.kind.command_for(model_type))
        commands = dict.fromkeys(self.kind.commands.values())
        common = set.intersection(*(set(options_for(command)) for command in commands))
        return {box: gr.Column(visible=name in accepted) for name, box in self.form.boxes.items() if name not in common}


def _net_widget(arg: NetworkArg, t: Translator) -> gr.components.Component:  # LoRA tab only
    common = {"label": f"{t.t(f'ui.netarg.{arg.name}')} ({arg.name})", "elem_id": f"netarg_{arg.name}"}
    if arg.kind == "bool":
        return gr.Checkbox(value=False, **common)
    if arg.kind == "choice":
        return gr.Dropdown(choices=[(t.t("ui.not_set"), UNSET), *arg.choices], value=UNSET, **common)
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

    def model_selector() -> None:
        holders["model_type"] = gr.Radio(
            choices=[(t.t(f"ui.model_type.{m}"), m) for m in MODEL_TYPES], value="sd1",
            label=t.t("ui.model_type"), info=t.t(f"ui.model_type_info.{kind.key}"), elem_id=kind.elem("model_type"),
        )  # fmt: skip

    def network_selector() -> None:
        choices = [(t.t(f"ui.network.{name}") if "/" not in name else name, name) for name in NETWORK_TYPES]
        holders["network_type"] = gr.Dropdown(
            choices=choices, value=DEFAULT_TYPE, label=t.t("ui.network_type"),
            info=t.t("ui.network_type_info"), elem_id="network_type",
        )  # fmt: skip
        shown = NETWORK_TYPES[DEFAULT_TYPE].args
        fields, boxes = {}, {}
        with gr.Row(equal_height=False):
            for name, arg in NETWORK_ARGS.items():
                with gr.Column(min_width=200, visible=name in shown) as box:
                    fields[name] = _net_widget(arg, t)
                boxes[name] = box
        holders["net"] = (fields, boxes)

    preset_controls = _preset_row(t, browse, kind)
    if before_form is not None:
        before_form()
    extra = {"model": model_selector, **({"network": network_selector} if kind.networks else {})}
    form = build_form(tab_options(kind), t, browse, extra, defaults, kind.id_prefix)
    with gr.Accordion(t.t("ui.accelerate"), open=False, elem_id=kind.elem("group_accelerate")):
        accelerate = build_accelerate_form(t, kind.id_prefix)
    tab = LoraTab(
        form, accelerate, holders["model_type"], holders.get("network_type"), *holders["net"], preset_controls[0], kind
    )
    _wire_selectors(tab)
    _wire_actions(tab, t)
    _wire_presets(tab, t, *preset_controls)
    build_progress_panel(t, lora_actions.RUNNER, kind.key)
    return tab


PresetControls = tuple[gr.Dropdown, gr.Button, gr.Textbox, gr.Button, gr.Button, gr.Markdown, gr.Textbox, gr.Button]


def _preset_row(t: Translator, browse: Callable[[str, bool], str] | None, kind: TrainingKind) -> PresetControls:
    found = presets.list_presets(kind.shipped_presets, kind.user_presets)
    with gr.Group():
        with gr.Row(equal_height=True):
            chooser = gr.Dropdown(choices=list(found), value=None, label=t.t("ui.preset"),
                                  scale=3, elem_id=kind.elem("preset_select"))  # fmt: skip
            load = gr.Button(t.t("ui.load_preset"), scale=1, elem_id=kind.elem("preset_load"))
            name = gr.Textbox(label=t.t("ui.preset_name"), scale=3, elem_id=kind.elem("preset_name"))
            save = gr.Button(t.t("ui.save_preset"), scale=1, elem_id=kind.elem("preset_save"))
            save_as = gr.Button(t.t("ui.save_preset_as"), scale=1, elem_id=kind.elem("preset_save_as"))
        with gr.Row(equal_height=True, visible=kind.networks):  # kohya_ss configs are LoRA configs
            kohya_path = gr.Textbox(label=t.t("ui.kohya_config"), info=t.t("ui.kohya_config_info"), scale=6,
                                    elem_id="kohya_config_path")  # fmt: skip
            if browse is not None:
                pick = gr.Button(t.t("ui.browse"), scale=1, elem_id="kohya_config_browse")
                pick.click(lambda current: browse(current, False), inputs=kohya_path, outputs=kohya_path)
            kohya_import = gr.Button(t.t("ui.kohya_import"), scale=1, elem_id="kohya_import")
        message = gr.Markdown(elem_id=kind.elem("preset_message"))
    return chooser, load, name, save, save_as, message, kohya_path, kohya_import


def _wire_selectors(tab: LoraTab) -> None:
    if tab.network_type is not None:
        net_boxes = list(tab.net_boxes.values())
        tab.network_type.change(tab.network_visibility, inputs=tab.network_type, outputs=net_boxes)
    model_boxes = list(tab.model_visibility("sd1"))
    tab.model_type.change(tab.model_visibility, inputs=tab.model_type, outputs=model_boxes)


def _wire_actions(tab: LoraTab, t: Translator) -> None:
    with gr.Row():
        preflight = gr.Button(t.t("ui.preflight"), elem_id=f"{tab.kind.key}_preflight")
        start = gr.Button(t.t("ui.start"), variant="primary", elem_id=f"{tab.kind.key}_start")
        stop = gr.Button(t.t("ui.stop"), variant="stop", elem_id=f"{tab.kind.key}_stop")
        show = gr.Button(t.t("ui.print_command"), elem_id=f"{tab.kind.key}_print")
        export = gr.Button(t.t("ui.export_command"), elem_id=f"{tab.kind.key}_export")
        tensorboard = gr.Button(t.t("ui.tensorboard"), elem_id=f"{tab.kind.key}_tensorboard")
    message = gr.Markdown(elem_id=f"{tab.kind.key}_message")
    report = gr.Markdown(elem_id=f"{tab.kind.key}_preflight_report")
    with gr.Accordion(t.t("ui.command"), open=False, visible=False) as command_box:
        bash = gr.Code(label="bash", language="shell", interactive=False, elem_id=f"{tab.kind.key}_command_bash")
        cmd = gr.Code(label="cmd.exe", interactive=False, elem_id=f"{tab.kind.key}_command_cmd")
        toml = gr.Code(label="TOML", interactive=False, elem_id=f"{tab.kind.key}_command_toml")

    def on_print(data: dict[Any, Any]) -> dict[Any, Any]:
        text = lora_actions.print_command(tab.read(data), t)
        shown = bool(text.bash)
        return {message: text.message, bash: text.bash, cmd: text.cmd, toml: text.toml,
                command_box: gr.Accordion(visible=shown, open=shown)}  # fmt: skip

    inputs = tab.inputs
    start.click(lambda data: lora_actions.start(tab.read(data), t), inputs=inputs, outputs=message)
    stop.click(lambda: lora_actions.stop(t), outputs=message)
    preflight.click(lambda data: lora_actions.preflight(tab.read(data), t), inputs=inputs, outputs=report)
    show.click(on_print, inputs=inputs, outputs=[message, bash, cmd, toml, command_box])
    export.click(lambda data: lora_actions.export(tab.read(data), t), inputs=inputs, outputs=message)
    tensorboard.click(lambda data: lora_actions.open_tensorboard(tab.read(data), t), inputs=inputs, outputs=message)


def _wire_presets(
    tab: LoraTab, t: Translator, chooser: gr.Dropdown, load: gr.Button, name: gr.Textbox,
    save: gr.Button, save_as: gr.Button, message: gr.Markdown, kohya_path: gr.Textbox, kohya_import: gr.Button,
) -> None:  # fmt: skip
    outputs = [*tab.inputs, *tab.net_boxes.values(), *tab.model_visibility("sd1"), message]

    def on_load(data: dict[Any, Any]) -> dict[Any, Any]:
        path = tab.list_presets().get(data.get(chooser) or "")
        if path is None:
            return {message: t.t("ui.choose_preset")}
        loaded = presets.load_preset(path, tab.kind)
        current = tab.read(data)
        # A shipped preset only names what it changes; a user preset is the whole tab.
        overlay = path.parent == tab.kind.shipped_presets
        if overlay:
            base = current.preset_options()
            if "network_module" in loaded.values:  # the current network_args belong to another network
                base.pop("network_args", None)
            current.options = {**base, **loaded.values}
        else:
            current = TabValues(options=dict(loaded.values), kind=tab.kind)
        current.model_type = loaded.gui.get("model_type", current.model_type)
        current.network_type = loaded.gui.get("network_type", current.network_type)
        current.accelerate = loaded.gui.get("accelerate", {} if not overlay else current.accelerate)
        lines = [t.t("ui.preset_loaded", path=path)]
        if loaded.unknown:
            lines.append(t.t("ui.unknown_preset_keys", keys="; ".join(loaded.unknown)))
        lines += [f"- {problem}" for problem in loaded.problems]
        return {**tab.update(current), message: "\n\n".join(lines)}

    def on_save(data: dict[Any, Any], as_new: bool) -> dict[Any, Any]:
        chosen = tab.list_presets().get(data.get(chooser) or "")
        typed = (data.get(name) or "").strip()
        if as_new or chosen is None or chosen.parent != tab.kind.user_presets:
            if not typed:
                return {message: t.t("ui.preset_name_needed")}
            path = presets.user_preset_path(typed, tab.kind.user_presets)
        else:
            path = chosen
        values = tab.read(data)
        presets.save_preset(path, values.preset_options(), values.gui_keys())
        return {message: t.t("ui.preset_saved", path=path),
                chooser: gr.Dropdown(choices=list(tab.list_presets()), value=path.stem)}  # fmt: skip


    def on_import(path: str) -> dict[Any, Any]:
        imported = lora_actions.import_kohya(path or "", t)
        if imported.tab is None:
            return {message: imported.message}
        return {**tab.update(imported.tab), message: imported.message}

    load.click(on_load, inputs=tab.inputs | {chooser}, outputs=outputs)
    kohya_import.click(on_import, inputs=kohya_path, outputs=outputs)
    save.click(lambda data: on_save(data, False), inputs=tab.inputs | {chooser, name}, outputs=[message, chooser])
    save_as.click(lambda data: on_save(data, True), inputs=tab.inputs | {chooser, name}, outputs=[message, chooser])
