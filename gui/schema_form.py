"""Widgets generated from the option schema: one accordion per group, values as dicts keyed by option name.

Every option of the given commands gets one widget of its kind (bool -> checkbox, numbers -> number
boxes with the schema's range, choices -> dropdowns, paths and other text -> text boxes, lists ->
a text box of space/newline separated items). An empty widget means "not set": the schema default
applies and nothing is written to the run config. Callbacks receive the widgets as a set, i.e. one
dict {component: value}; `read` turns that into {option name: value} and `update` goes back.

`to_widget` / `from_widget` hold the value conversions and are tested without a browser.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from backend.options.schema import GROUPS, Option
from gui.i18n import Translator

# Groups opened when the tab loads; the rest start folded.
OPEN_GROUPS = ("model", "folders", "network", "basic")
# Choice value standing for None (Gradio reserves None for "nothing selected").
UNSET = ""
_LIST_SPLIT = re.compile(r"[\s,]+")


def is_folder_option(name: str) -> bool:
    """Paths that name a folder (a folder picker rather than a file picker)."""
    return name.endswith("_dir") or name == "resume"


def _number_as_text(option: Option) -> bool:
    # Optional numbers use a text box: an empty gr.Number shows (and may send back) 0, which would
    # silently set e.g. seed=0; an empty text box is plainly "not set".
    return option.kind in ("int", "float", "int_or_float") and option.default is None


def _parse_number(option: Option, text: str) -> Any:
    """Text -> int/float; text that is no number is returned as is, for the validator to name."""
    text = text.strip()
    try:
        if option.kind == "int" or (option.kind == "int_or_float" and text.lstrip("+-").isdigit()):
            return int(text)
        return float(text)
    except ValueError:
        return text


def to_widget(option: Option, value: Any) -> Any:
    """A schema value (None = not set) as its widget holds it."""
    if option.kind == "bool":
        return bool(value)
    if option.choices is not None:
        return UNSET if value is None else str(value)
    if _number_as_text(option):
        return "" if value is None else str(value)
    if value is None:
        return None if option.kind in ("int", "float", "int_or_float") else ""
    if option.kind == "str_list":
        return "\n".join(shlex.quote(str(item)) for item in value)
    if option.kind == "float_list":
        return " ".join(str(item) for item in value)
    return value


def from_widget(option: Option, value: Any) -> Any:
    """A widget's value as a schema value; None when the widget is empty (not set).

    Raises ValueError for text that cannot be a value of the option's kind (e.g. unbalanced quotes).
    """
    if option.kind == "bool":
        return bool(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if option.choices is not None:
        matches = [choice for choice in option.choices if choice is not None and str(choice) == str(value)]
        return matches[0] if matches else value  # an unknown value is left to the validator to report
    if _number_as_text(option) and isinstance(value, str):
        return _parse_number(option, value)
    if option.kind in ("int", "int_or_float") and isinstance(value, float) and value.is_integer():
        return int(value)
    if option.kind in ("str", "path"):
        return str(value).strip()
    if option.kind == "str_list":
        return shlex.split(str(value)) or None
    if option.kind == "float_list":
        return [float(item) for item in _LIST_SPLIT.split(str(value).strip())]
    return value


def widget_label(translator: Translator, name: str) -> str:
    return f"{translator.option_label(name)} ({name})"


def _widget(option: Option, translator: Translator, initial: Any, id_prefix: str = "") -> gr.components.Component:
    common: dict[str, Any] = {
        "label": widget_label(translator, option.name),
        "info": translator.option_help(option.name),
        "elem_id": f"{id_prefix}opt_{option.name}",
        "value": to_widget(option, initial),
    }
    if option.kind == "bool":
        return gr.Checkbox(**common)
    if option.choices is not None:
        # "Not set" is offered whenever the option may be left unset (a None choice or no default).
        unset = [(translator.t("ui.not_set"), UNSET)] if None in option.choices or option.default is None else []
        choices = unset + [
            (translator.choice_label(option.name, choice), str(choice)) for choice in option.choices if choice is not None
        ]
        return gr.Dropdown(choices=choices, **common)
    if option.kind in ("int", "float", "int_or_float") and not _number_as_text(option):
        return gr.Number(
            precision=0 if option.kind == "int" else None,
            minimum=option.minimum,
            maximum=option.maximum,
            step=1 if option.kind == "int" else 0.0001,
            **common,
        )
    lines = 2 if option.kind == "str_list" else 1
    return gr.Textbox(lines=lines, max_lines=8 if lines > 1 else 1, **common)


@dataclass
class SchemaForm:
    options: dict[str, Option]
    # Values the fields start with and return to when a preset leaves them out: the schema default,
    # or the GUI config's [defaults] (gui/gui_config.py).
    initial: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, gr.components.Component] = field(default_factory=dict)
    # Option name -> the accordion-independent column it sits in (hidden for other model types).
    boxes: dict[str, gr.Column] = field(default_factory=dict)
    accordions: dict[str, gr.Accordion] = field(default_factory=dict)

    @property
    def components(self) -> set[gr.components.Component]:
        return set(self.fields.values())

    def read(self, data: Mapping[Any, Any]) -> dict[str, Any]:
        """{option name: value} for the widgets that are set (from a callback's {component: value})."""
        values: dict[str, Any] = {}
        for name, component in self.fields.items():
            if component in data:
                value = from_widget(self.options[name], data[component])
                if value is not None and not (self.options[name].kind == "bool" and value is False):
                    values[name] = value
        return values

    def update(self, values: Mapping[str, Any]) -> dict[gr.components.Component, Any]:
        """Widget values for `values`; options missing from it go back to their defaults."""
        return {
            component: to_widget(self.options[name], values.get(name, self.initial_value(name)))
            for name, component in self.fields.items()
        }

    def initial_value(self, name: str) -> Any:
        return self.initial.get(name, self.options[name].default)


def build_form(
    options: Mapping[str, Option],
    translator: Translator,
    browse: Callable[[str, bool], str] | None = None,
    extra_content: Mapping[str, Callable[[], None]] | None = None,
    defaults: Mapping[str, Any] | None = None,
    id_prefix: str = "",
) -> SchemaForm:
    """Accordions for `options` (in GROUPS order) inside the current Blocks context.

    `browse(current, folder) -> path` adds a picker button beside each path box (None: no buttons,
    e.g. --headless). `extra_content[group]` renders extra widgets at the top of that group.
    `defaults` overrides schema defaults as the fields' initial values. Element ids are
    `<id_prefix>opt_<name>` and `<id_prefix>group_<group>`.
    """
    form = SchemaForm(dict(options), {k: v for k, v in (defaults or {}).items() if k in options})
    for group in GROUPS:
        members = [option for option in options.values() if option.group == group]
        extra = (extra_content or {}).get(group)
        if not members and extra is None:
            continue
        with gr.Accordion(
            translator.group_label(group), open=group in OPEN_GROUPS, elem_id=f"{id_prefix}group_{group}"
        ) as accordion:
            form.accordions[group] = accordion
            if extra is not None:
                extra()
            _fields(form, [o for o in members if o.kind != "bool"], translator, browse, 3, id_prefix)
            _fields(form, [o for o in members if o.kind == "bool"], translator, None, 4, id_prefix)
    return form


def _fields(
    form: SchemaForm,
    members: Iterable[Option],
    translator: Translator,
    browse: Callable[[str, bool], str] | None,
    per_row: int,
    id_prefix: str = "",
) -> None:
    members = list(members)
    for start in range(0, len(members), per_row):
        with gr.Row(equal_height=False):
            for option in members[start : start + per_row]:
                with gr.Column(min_width=260) as box:
                    component = _widget(option, translator, form.initial_value(option.name), id_prefix)
                    if browse is not None and option.kind == "path":
                        _browse_button(component, option.name, translator, browse, id_prefix)
                form.fields[option.name] = component
                form.boxes[option.name] = box
            for _ in range(per_row - len(members[start : start + per_row])):
                gr.Column(min_width=260)  # keeps a short last row aligned with the rows above


def _browse_button(
    box: gr.components.Component, name: str, translator: Translator, browse: Callable[[str, bool], str],
    id_prefix: str = "",
) -> None:
    folder = is_folder_option(name)
    button = gr.Button(translator.t("ui.browse"), size="sm", elem_id=f"{id_prefix}browse_{name}")
    button.click(lambda current: browse(current, folder), inputs=box, outputs=box)
