"""Widgets generated from the option schema: the essentials first (row by row), then one accordion
per group; values as dicts keyed by option name.

Every option of the given commands gets one widget of its kind (bool -> checkbox, choices ->
dropdowns, numbers, paths and other text -> text boxes, lists -> a text box of space/newline separated
items). An empty widget means "not set": the schema default applies and nothing is written to the run
config. Where the form starts with a value (the tab's default, or the GUI config's), emptying the
field is itself a choice, read as None so that presets, the saved form and a run's form keep it. Callbacks receive the widgets as a set, i.e. one dict {component: value}; `read`
turns that into {option name: value} and `update` goes back.

Numbers are text boxes, and dropdowns never hold a value outside their choices: Gradio checks
nothing here. An empty gr.Number shows (and sends) 0 once rendered, and with a minimum Gradio's own
check then answers in English without naming the field ("Value 0 is less than minimum value 1") and
refuses every later button press; it also rounds 2.5 to 2 in an integer box without a word. Types,
ranges and choices are checked by the schema validator when a button needs the values, naming the
option.

`to_widget` / `from_widget` hold the value conversions and are tested without a browser.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from backend.messages import msg
from backend.options.schema import GROUPS, Option
from gui.i18n import Translator
from gui.plain_text import plain_info

# Groups opened when the tab loads; the rest start folded (the essentials section is always open).
OPEN_GROUPS = ("model", "folders", "network", "basic")
ESSENTIALS = "essentials"
# Choice value standing for None (Gradio reserves None for "nothing selected").
UNSET = ""
# CSS class of every field's block: help texts show on hover/focus (gui/app.py CSS).
FIELD_CLASS = "opt-field"
_LIST_SPLIT = re.compile(r"[\s,]+")


def is_folder_option(name: str) -> bool:
    """Paths that name a folder (a folder picker rather than a file picker)."""
    return name.endswith("_dir") or name == "resume"


def _number_as_text(option: Option) -> bool:
    # Every number is a text box (see the module docstring): empty is plainly "not set".
    return option.kind in ("int", "float", "int_or_float")


def _parse_number(option: Option, text: str) -> Any:
    """Text -> int/float; text that is no number is returned as is, for the validator to name."""
    text = text.strip()
    try:
        if option.kind == "int" or (option.kind == "int_or_float" and text.lstrip("+-").isdigit()):
            return int(text)
        return float(text)
    except ValueError:
        try:  # "2.0" for an int: the number, so the validator says "expects an integer, got 2.5" only for 2.5
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() else number


def to_widget(option: Option, value: Any) -> Any:
    """A schema value (None = not set) as its widget holds it."""
    if option.kind == "bool":
        return bool(value)
    if _multiselect(option):
        listed = value if isinstance(value, list | tuple) else [] if value is None else [value]
        return [str(item) for item in listed]
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
    if _multiselect(option):  # a multiselect list; text from a preset or config as one item
        listed = value if isinstance(value, list | tuple) else [] if value is None else [value]
        items = [str(item) for item in listed if str(item).strip()]
        return items or None
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
        try:
            return shlex.split(str(value)) or None
        except ValueError as error:  # "No closing quotation"
            raise ValueError(msg(
                "gui.form.unclosed_quote", "{error}; put quotes around items with spaces, in pairs", error=str(error)
            )) from None
    if option.kind == "float_list":
        items = _LIST_SPLIT.split(str(value).strip())
        try:
            return [float(item) for item in items]
        except ValueError:
            raise ValueError(msg(
                "gui.form.numbers_expected", "expects numbers separated by spaces, got {value}", value=repr(str(value).strip())
            )) from None
    return value


def widget_label(translator: Translator, name: str) -> str:
    return f"{translator.option_label(name)} ({name})"


def _multiselect(option: Option) -> bool:
    """A list option with a fixed set of items (finetrainers' --layerwise_upcasting_modules): a multiselect."""
    return option.kind == "str_list" and option.choices is not None


def _choices(option: Option, translator: Translator) -> list[tuple[str, str]]:
    # "Not set" is offered whenever the option may be left unset (a None choice or no default).
    unset = [(translator.t("ui.not_set"), UNSET)] if None in option.choices or option.default is None else []
    return unset + [
        (translator.choice_label(option.name, choice), str(choice)) for choice in option.choices if choice is not None
    ]


def _widget(option: Option, translator: Translator, initial: Any, id_prefix: str = "") -> gr.components.Component:
    common: dict[str, Any] = {
        "label": widget_label(translator, option.name),
        "info": plain_info(translator.option_help(option.name)),
        "elem_id": f"{id_prefix}opt_{option.name}",
        "elem_classes": [FIELD_CLASS],
        "value": to_widget(option, initial),
    }
    if option.kind == "bool":
        return gr.Checkbox(**common)
    if _multiselect(option):
        items = [(translator.choice_label(option.name, choice), str(choice)) for choice in option.choices]
        return gr.Dropdown(choices=items, multiselect=True, **common)
    if option.choices is not None:
        choices = _choices(option, translator)
        if common["value"] not in [value for _, value in choices]:  # e.g. a GUI config default
            choices.append((str(common["value"]), common["value"]))
        return gr.Dropdown(choices=choices, **common)
    lines = 2 if option.kind == "str_list" else 1
    return gr.Textbox(lines=lines, max_lines=8 if lines > 1 else 1, **common)


@dataclass
class SchemaForm:
    options: dict[str, Option]
    # Values the fields start with and return to when a preset leaves them out: the kind's default,
    # or the GUI config's [defaults] (gui/gui_config.py).
    initial: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, gr.components.Component] = field(default_factory=dict)
    # Option name -> the accordion-independent column it sits in (hidden for other model types).
    boxes: dict[str, gr.Column] = field(default_factory=dict)
    accordions: dict[str, gr.Accordion] = field(default_factory=dict)
    # Dropdown options -> the choice values they offer.
    choices: dict[str, list[str]] = field(default_factory=dict)

    @property
    def components(self) -> set[gr.components.Component]:
        return set(self.fields.values())

    def read(self, data: Mapping[Any, Any], problems: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        """{option name: value} for the widgets that are set (from a callback's {component: value}).

        Text a field cannot hold (an unclosed quote in a list) is left out and reported in
        `problems` as (option name, what is wrong); without `problems` it raises ValueError.
        """
        values: dict[str, Any] = {}
        for name, component in self.fields.items():
            if component in data:
                try:
                    value = from_widget(self.options[name], data[component])
                except ValueError as error:
                    if problems is None:
                        raise
                    problems.append((name, str(error)))
                    continue
                if value is not None and not (self.options[name].kind == "bool" and value is False):
                    values[name] = value
                elif value is None and self.initial_value(name) not in (None, "", ()):
                    values[name] = None  # emptied on purpose: not the value the form starts with
        return values

    def update(self, values: Mapping[str, Any]) -> dict[gr.components.Component, Any]:
        """Widget values for `values`; options missing from it go back to their initial values.

        A value a dropdown does not offer (an imported config's) is shown as an extra choice rather
        than handed to Gradio, which would refuse every later callback without naming the field;
        the validator names it when a button needs the values.
        """
        updates: dict[gr.components.Component, Any] = {}
        for name, component in self.fields.items():
            value = to_widget(self.options[name], values.get(name, self.initial_value(name)))
            offered = self.choices.get(name)
            if offered is not None and isinstance(value, list):  # a multiselect
                missing = [(item, item) for item in value if item not in offered]
                updates[component] = gr.Dropdown(choices=[*component.choices, *missing], value=value) if missing else value
            elif offered is not None and value not in offered:
                updates[component] = gr.Dropdown(choices=[*component.choices, (str(value), value)], value=value)
            else:
                updates[component] = value
        return updates

    def initial_value(self, name: str) -> Any:
        return self.initial.get(name, self.options[name].default)


def build_form(
    options: Mapping[str, Option],
    translator: Translator,
    browse: Callable[[str, bool], str] | None = None,
    extra_content: Mapping[str, Callable[[], None]] | None = None,
    defaults: Mapping[str, Any] | None = None,
    id_prefix: str = "",
    essentials: Sequence[Sequence[str]] = (),
    slots: Mapping[str, Callable[[], None]] | None = None,
) -> SchemaForm:
    """An open "essentials" section laid out by `essentials`, then accordions for the rest (in GROUPS
    order), inside the current Blocks context.

    `essentials` are the section's rows, each a sequence of option names and names of `slots`
    (renderers of widgets that are not options, such as a model type selector), shown where they
    stand; a row that is one slot alone is that slot's own content, full width. Names of neither
    are skipped (an option another model type's command has). `browse(current, folder) -> path`
    adds a picker button beside each path box (None: no buttons, e.g. --headless).
    `extra_content[group]` renders extra widgets at the top of that group ("essentials" included).
    `defaults` overrides the options' defaults as the fields' initial values. Element ids are
    `<id_prefix>opt_<name>` and `<id_prefix>group_<group>`.
    """
    form = SchemaForm(dict(options), {k: v for k, v in (defaults or {}).items() if k in options})
    slots = slots or {}
    rows = [[name for name in row if name in options or name in slots] for row in essentials]
    rows = [row for row in rows if row]
    taken = {name for row in rows for name in row if name in options}
    sections: list[tuple[str, list[Option]]] = [(ESSENTIALS, [])] if rows or ESSENTIALS in (extra_content or {}) else []
    sections += [(group, [o for o in options.values() if o.group == group and o.name not in taken]) for group in GROUPS]
    for group, members in sections:
        extra = (extra_content or {}).get(group)
        if not members and extra is None and group != ESSENTIALS:
            continue
        label = translator.t("ui.group_essentials") if group == ESSENTIALS else translator.group_label(group)
        with gr.Accordion(
            label, open=group == ESSENTIALS or group in OPEN_GROUPS, elem_id=f"{id_prefix}group_{group}",
            elem_classes=["opt-group"],
        ) as accordion:
            form.accordions[group] = accordion
            if extra is not None:
                extra()
            if group == ESSENTIALS:
                for row in rows:
                    _row(form, row, slots, translator, browse, id_prefix)
            _fields(form, [o for o in members if o.kind != "bool"], translator, browse, 3, id_prefix)
            _fields(form, [o for o in members if o.kind == "bool"], translator, None, 4, id_prefix)
    return form


def _row(
    form: SchemaForm,
    row: Sequence[str],
    slots: Mapping[str, Callable[[], None]],
    translator: Translator,
    browse: Callable[[str, bool], str] | None,
    id_prefix: str,
    per_row: int = 3,
) -> None:
    """One essentials row: its options and slots side by side, padded to `per_row` columns."""
    if len(row) == 1 and row[0] in slots:
        slots[row[0]]()
        return
    with gr.Row(equal_height=False):
        for name in row:
            if name in slots:
                with gr.Column(min_width=260):
                    slots[name]()
            else:
                _field(form, form.options[name], translator, browse if form.options[name].kind != "bool" else None, id_prefix)
        for _ in range(per_row - len(row)):
            gr.Column(min_width=260)  # aligned with the rows above and below


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
                _field(form, option, translator, browse, id_prefix)
            for _ in range(per_row - len(members[start : start + per_row])):
                gr.Column(min_width=260)  # keeps a short last row aligned with the rows above


def _field(
    form: SchemaForm, option: Option, translator: Translator, browse: Callable[[str, bool], str] | None,
    id_prefix: str,
) -> None:  # fmt: skip
    """One option's widget in a column of its own (the column is what model types show and hide)."""
    with gr.Column(min_width=260, elem_id=f"{id_prefix}box_{option.name}") as box:
        component = _widget(option, translator, form.initial_value(option.name), id_prefix)
        if browse is not None and option.kind == "path":
            _browse_button(component, option.name, translator, browse, id_prefix)
    form.fields[option.name] = component
    form.boxes[option.name] = box
    if isinstance(component, gr.Dropdown):
        form.choices[option.name] = [value for _, value in component.choices]


def _browse_button(
    box: gr.components.Component, name: str, translator: Translator, browse: Callable[[str, bool], str],
    id_prefix: str = "",
) -> None:
    folder = is_folder_option(name)
    button = gr.Button(translator.t("ui.browse"), size="sm", elem_id=f"{id_prefix}browse_{name}")
    button.click(lambda current: browse(current, folder), inputs=box, outputs=box)
