"""The model types the training tabs offer, as the model families declare them.

The list is `backend.options.schema.model_types()`, the one `python -m backend.options --dump`
carries (backend/families: one entry per family, in the order the GUI offers them): each type's
name, label, the command each training kind runs and the option values choosing it implies (SD 2.x
is sd-scripts' `--v2`). Nothing in gui/ names a family, so a family added to backend/families shows
up in the model type selector, presets, snapshots and imports by itself
(tests/gui/test_no_family_names.py keeps it so).

Pure data: no gradio, no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from backend.options.schema import all_options
from backend.options.schema import model_types as declared_model_types
from gui.i18n import Translator

_ABSENT = object()


@dataclass(frozen=True)
class ModelType:
    name: str  # the family's id: presets' and snapshots' "model_type", the selector's value
    label: str  # the family's own name for itself; the catalogue's ui.model_type.<name> wins
    commands: Mapping[str, str]  # training kind ("lora", "dreambooth", "finetune") -> the command that trains it
    implied_options: Mapping[str, Any]  # option values choosing this type implies
    # Options its commands take for other model types only (Chroma: FLUX.1's clip_l): hidden for it.
    unused_options: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelType:
        return cls(data["name"], data["label"], dict(data["commands"]), dict(data["implied_options"]),
                   tuple(data.get("unused_options", ())))

    def distinguishing_options(self) -> dict[str, Any]:
        """The implied values that differ from the options' defaults: what a run gets added for this
        type and what marks a preset or import as this type (v2 = true: SD 2.x)."""
        options = all_options()
        return {
            name: value for name, value in self.implied_options.items()
            if name not in options or not same_value(options[name].default, value)
        }  # fmt: skip

    def matches(self, values: Mapping[str, Any]) -> bool:
        """Whether `values` hold every value this type implies (an absent option has its default)."""
        options = all_options()
        for name, implied in self.implied_options.items():
            default = options[name].default if name in options else _ABSENT
            if not same_value(values.get(name, default), implied):
                return False
        return True


def same_value(first: Any, second: Any) -> bool:
    """Equal and of one type: `True` is not 1 (a preset's "v2": 1 does not pick SD 2.x)."""
    return type(first) is type(second) and first == second


def all_model_types() -> tuple[ModelType, ...]:
    """Every declared model type, in the order the GUI offers them (read anew on each call)."""
    return tuple(map(ModelType.from_json, declared_model_types()))


def kind_model_types(kind: str) -> tuple[ModelType, ...]:
    """The declared model types that training kind `kind` trains (those with a command for it), in order."""
    return tuple(model_type for model_type in all_model_types() if kind in model_type.commands)


def implied_option_names(types: Iterable[ModelType]) -> tuple[str, ...]:
    """Every option a model type implies (set by the model type selector rather than shown as a field)."""
    return tuple(dict.fromkeys(name for model_type in types for name in model_type.implied_options))


def model_type_label(t: Translator, model_type: ModelType) -> str:
    """The selector's text: the catalogue's `ui.model_type.<name>`, else the family's own label."""
    key = f"ui.model_type.{model_type.name}"
    text = t.t(key)
    return model_type.label if text == key else text


def model_type_choices(t: Translator, types: Iterable[ModelType]) -> list[tuple[str, str]]:
    """(label, name) per model type, in order: the model type selector's choices."""
    return [(model_type_label(t, model_type), model_type.name) for model_type in types]
