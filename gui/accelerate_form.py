"""The `accelerate launch` settings of a run (processes, GPUs, precision), as widgets.

Values travel as a dict keyed by `gui.command_builder.ACCELERATE_FLAGS` names; empty = not passed
(accelerate's own config or defaults apply).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from gui.i18n import Translator

MIXED_PRECISION = ("no", "fp16", "bf16")
DYNAMO_BACKENDS = ("no", "eager", "aot_eager", "inductor")
_NUMBERS = ("num_processes", "num_cpu_threads_per_process", "num_machines", "main_process_port")


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
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, str):
                value = value.strip()
            if value not in (None, "", False):
                settings[name] = value
        return settings

    def update(self, settings: Mapping[str, Any]) -> dict[gr.components.Component, Any]:
        updates: dict[gr.components.Component, Any] = {}
        for name, component in self.fields.items():
            value = settings.get(name)
            if name == "multi_gpu":
                updates[component] = bool(value)
            elif name in _NUMBERS:
                updates[component] = value
            else:
                updates[component] = "" if value is None else str(value)
        return updates


def build_accelerate_form(translator: Translator, id_prefix: str = "") -> AccelerateForm:
    form = AccelerateForm()

    def common(name: str) -> dict[str, Any]:
        return {"label": f"{translator.t(f'ui.accelerate.{name}')} ({name})", "elem_id": f"{id_prefix}acc_{name}"}

    not_set = (translator.t("ui.not_set"), "")
    with gr.Row():
        form.fields["mixed_precision"] = gr.Dropdown(
            choices=[not_set, *MIXED_PRECISION], value="", **common("mixed_precision")
        )
        for name in ("num_processes", "num_cpu_threads_per_process", "num_machines"):
            form.fields[name] = gr.Number(value=None, precision=0, minimum=1, **common(name))
    with gr.Row():
        form.fields["gpu_ids"] = gr.Textbox(value="", placeholder="0,1", **common("gpu_ids"))
        form.fields["main_process_port"] = gr.Number(
            value=None, precision=0, minimum=1, maximum=65535, **common("main_process_port")
        )
        form.fields["dynamo_backend"] = gr.Dropdown(
            choices=[not_set, *DYNAMO_BACKENDS], value="", **common("dynamo_backend")
        )
        form.fields["multi_gpu"] = gr.Checkbox(value=False, **common("multi_gpu"))
    return form
