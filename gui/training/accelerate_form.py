"""The `accelerate launch` settings of a run (processes, GPUs, precision), as widgets.

Values travel as a dict keyed by `gui.training.command_builder.ACCELERATE_FLAGS` names; empty = not passed
(accelerate's own config or defaults apply). The numbers are text boxes: an empty gr.Number shows 0,
and with Gradio's minimum of 1 every later button press failed with Gradio's English "Value 0 is less
than minimum value 1". Here an empty box is "not set", and `accelerate_problems` checks what was
typed, naming the field in the UI language.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from gui.i18n import Translator
from gui.plain_text import plain_info

MIXED_PRECISION = ("no", "fp16", "bf16")
DYNAMO_BACKENDS = ("no", "eager", "aot_eager", "inductor")
# Whole-number settings and their (minimum, maximum).
NUMBERS: dict[str, tuple[int, int | None]] = {
    "num_processes": (1, None),
    "num_cpu_threads_per_process": (1, None),
    "num_machines": (1, None),
    "machine_rank": (0, None),
    "main_process_port": (1, 65535),
}
CHOICES: dict[str, tuple[str, ...]] = {"mixed_precision": MIXED_PRECISION, "dynamo_backend": DYNAMO_BACKENDS}
_GPU_IDS = re.compile(r"^(all|\d+(\s*,\s*\d+)*)$")


def is_unset(value: Any) -> bool:
    """Empty or unchecked; a typed 0 is a value (and is checked), not "not set"."""
    return value is None or value is False or (isinstance(value, str) and not value.strip())


def _as_int(value: Any) -> Any:
    """An integer when `value` is one (4, 4.0, " 4 "), else `value` unchanged for the check to name."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    return value


def accelerate_problems(settings: Mapping[str, Any], t: Translator) -> list[str]:
    """What is wrong with `settings` (as read from the form or a preset), one message per field."""
    problems: list[str] = []
    for name, value in settings.items():
        if is_unset(value):
            continue
        fields = {"field": f"{t.t(f'ui.accelerate.{name}')} ({name})", "value": value}
        if name in NUMBERS:
            low, high = NUMBERS[name]
            number = _as_int(value)
            bad = not isinstance(number, int) or isinstance(number, bool) or number < low
            if bad or (high is not None and number > high):
                key = "ui.accelerate_number" if high is None else "ui.accelerate_number_range"
                problems.append(t.t(key, minimum=low, maximum=high, **fields))
        elif name in CHOICES and value not in CHOICES[name]:
            problems.append(t.t("ui.accelerate_choice", choices=", ".join(CHOICES[name]), **fields))
        elif name == "gpu_ids" and not _GPU_IDS.match(str(value).strip()):
            problems.append(t.t("ui.accelerate_gpu_ids", **fields))
    return problems


@dataclass
class AccelerateForm:
    fields: dict[str, gr.components.Component] = field(default_factory=dict)

    @property
    def components(self) -> set[gr.components.Component]:
        return set(self.fields.values())

    def read(self, data: Mapping[Any, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        for name, component in self.fields.items():
            value = data.get(component)
            if isinstance(value, str):
                value = value.strip()
            if name in NUMBERS:
                value = _as_int(value)
            if not is_unset(value):
                settings[name] = value
        return settings

    def update(self, settings: Mapping[str, Any]) -> dict[gr.components.Component, Any]:
        updates: dict[gr.components.Component, Any] = {}
        for name, component in self.fields.items():
            value = settings.get(name)
            if name == "multi_gpu":
                updates[component] = bool(value)
            elif name in CHOICES and value not in (None, "", *CHOICES[name]):
                # Kept visible (and named by `accelerate_problems`) instead of failing in Gradio.
                updates[component] = gr.Dropdown(choices=[*component.choices, (str(value), str(value))], value=str(value))
            else:
                updates[component] = "" if value is None else str(value)
        return updates


def build_accelerate_form(translator: Translator, id_prefix: str = "") -> AccelerateForm:
    form = AccelerateForm()

    def common(name: str) -> dict[str, Any]:
        info = translator.t(f"ui.accelerate_info.{name}")
        return {
            "label": f"{translator.t(f'ui.accelerate.{name}')} ({name})", "elem_id": f"{id_prefix}acc_{name}",
            "elem_classes": ["opt-field"], "info": plain_info(info),
        }  # fmt: skip

    not_set = (translator.t("ui.not_set"), "")
    with gr.Row():
        form.fields["mixed_precision"] = gr.Dropdown(
            choices=[not_set, *MIXED_PRECISION], value="", **common("mixed_precision")
        )
        for name in ("num_processes", "num_cpu_threads_per_process", "num_machines"):
            form.fields[name] = gr.Textbox(value="", placeholder=translator.t("ui.not_set"), **common(name))
    with gr.Row():
        form.fields["gpu_ids"] = gr.Textbox(value="", placeholder="0,1", **common("gpu_ids"))
        form.fields["main_process_port"] = gr.Textbox(
            value="", placeholder=translator.t("ui.not_set"), **common("main_process_port")
        )
        form.fields["dynamo_backend"] = gr.Dropdown(
            choices=[not_set, *DYNAMO_BACKENDS], value="", **common("dynamo_backend")
        )
        form.fields["multi_gpu"] = gr.Checkbox(value=False, **common("multi_gpu"))
    return form
