"""What loading and saving a preset does to a training tab, on named values (no widgets).

Loading gives a defined form, never a mix with what the form held before:

- every setting the preset does not hold goes back to its default (the tab's starting value, or
  the GUI config's [defaults]); the model type, network type and accelerate settings likewise
  (the first model type, Standard, none);
- a shipped preset (`presets/<tab>/`) names no paths, so the form's paths (model, folders, files)
  and output name are kept: they say where this user's things are, not how to train;
- a file with problems (not JSON, not an object, an invalid value) changes nothing at all.

Saving writes under the name typed in the name box (a selected user preset fills it in); an existing
file is only replaced after the user confirms (gui/training/lora_tab.py shows an Overwrite button).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gui.i18n import Translator
from gui.markdown_text import md_list, md_t
from gui.training.lora_actions import TabValues
from gui.training.model_types import model_type_label
from gui.training.network_types import DEFAULT_TYPE
from gui.training.presets import Preset, user_preset_path
from gui.training.training_kinds import TrainingKind, kind_options

KEPT_NAMES = ("output_name",)  # kept with the paths when a shipped preset is loaded


@dataclass
class LoadOutcome:
    tab: TabValues | None  # None: refused, the form stays as it is
    message: str
    kept: list[str] = field(default_factory=list)


def kept_options(kind: TrainingKind) -> tuple[str, ...]:
    """What loading a shipped preset leaves as it is: every path option and the output name."""
    return tuple(name for name, option in kind_options(kind).items() if option.kind == "path") + KEPT_NAMES


def preset_outcome(
    loaded: Preset, path: Path, display_name: str, current: TabValues, kind: TrainingKind, t: Translator,
    extra_problems: list[str] | None = None,
) -> LoadOutcome:
    """The form after loading `loaded` (read from `path`) over a form holding `current`."""
    problems = [*loaded.problems, *(extra_problems or [])]
    if problems:
        heading = md_t(t, "ui.preset_refused", name=display_name, path=path)
        return LoadOutcome(None, heading + "\n" + md_list(problems))
    shipped = path.parent == kind.shipped_presets
    options = dict(loaded.values)
    kept: list[str] = []
    if shipped:
        for name in kept_options(kind):
            if name not in options and current.options.get(name) not in (None, ""):
                options[name] = current.options[name]
                kept.append(name)
    tab = TabValues(
        options=options,
        model_type=loaded.gui.get("model_type", kind.default_model_type),
        network_type=loaded.gui.get("network_type", DEFAULT_TYPE),
        accelerate=dict(loaded.gui.get("accelerate") or {}),
        kind=kind,
    )
    lines = [
        md_t(
            t, "ui.preset_loaded_shipped" if shipped else "ui.preset_loaded_user", name=display_name, path=path,
            count=len(loaded.values), model_type=model_type_label(t, kind.model_type(tab.model_type)),
        ),  # fmt: skip
        md_t(t, "ui.preset_settings", names=", ".join(sorted(loaded.values)) or "-"),
    ]
    if kept:
        lines.append(md_t(t, "ui.preset_kept", names=", ".join(kept)))
    if loaded.unknown:
        lines.append(md_t(t, "ui.unknown_preset_keys", keys="; ".join(loaded.unknown)))
    return LoadOutcome(tab, "\n\n".join(lines), kept)


@dataclass(frozen=True)
class SaveTarget:
    path: Path | None  # None: no name to save under
    exists: bool = False


def save_target(typed: str, chosen: str | None, presets: Mapping[str, Path], user_dir: Path) -> SaveTarget:
    """Where Save writes: the typed name, or the selected user preset's name when none is typed."""
    name = typed.strip()
    if not name and chosen and chosen in presets and presets[chosen].parent == user_dir:
        name = chosen
    if not name:
        return SaveTarget(None)
    path = user_preset_path(name, user_dir)
    return SaveTarget(path, path.exists())


def name_for_chosen(chosen: str | None, presets: Mapping[str, Path], user_dir: Path) -> str:
    """The name box's text when a preset is picked: a user preset's name (Save then asks before
    replacing it); empty for a shipped one, which is never overwritten."""
    path = presets.get(chosen or "")
    return chosen if path is not None and path.parent == user_dir and chosen is not None else ""

