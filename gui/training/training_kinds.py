"""The two training tabs, LoRA and fine-tuning, as data: which command each model type runs, whether
a network is chosen, where presets live, which values a new form starts from, which options come
first, and how its page elements are named.

Both tabs are built by the same code (gui/training/lora_tab.py, gui/training/lora_actions.py, gui/training/presets.py); only
this description differs. The LoRA tab keeps the element ids it always had (`opt_<name>`,
`preset_select`, ...); the fine-tune tab's are prefixed `finetune_`. Action buttons and the progress
area are `<key>_start`, `<key>_status`, ... in both.

Pure data plus the option schema (no gradio, no torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from backend.options.schema import Option, options_for

REPO = Path(__file__).resolve().parents[2]
MODEL_TYPES = ("sd1", "sd2", "sdxl")
# Set by the model and network selectors rather than shown as fields.
SELECTOR_OPTIONS = ("v2", "network_module")
# Places in the essentials rows for widgets that are not options (gui/training/lora_tab.py renders them).
MODEL_SLOT, NETWORK_SLOT, NETWORK_ARGS_SLOT = "@model_type", "@network_type", "@network_args"
SLOTS = (MODEL_SLOT, NETWORK_SLOT, NETWORK_ARGS_SLOT)


@dataclass(frozen=True)
class TrainingKind:
    key: str  # "lora" | "finetune"
    commands: Mapping[str, str]  # model type -> training command
    networks: bool  # a network type selector and network arguments
    id_prefix: str  # prefix of the form's element ids ("" keeps the LoRA tab's historic ids)
    # Choices of shared options that this kind's commands accept (the schema lists every command's):
    # the form offers only these, so a LoRA cannot be set to save as a diffusers folder.
    choice_limits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The values a new form starts from where sd-scripts' defaults (the schema's, which the command
    # line keeps) suit the other kind of run: sd-scripts' learning rate 2e-6 and 1,600 steps are
    # fine-tuning values. None = the field starts empty (the schema default applies).
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # Shown first, in one open section, row by row: what nearly every run sets (every required option
    # among it), in the order a run is thought through: model, data, output, network, training basics.
    # Rows name options and SLOTS.
    essential_rows: tuple[tuple[str, ...], ...] = ()

    @property
    def essentials(self) -> tuple[str, ...]:
        """The options of the essentials section, in page order."""
        return tuple(name for row in self.essential_rows for name in row if name not in SLOTS)

    def command_for(self, model_type: str) -> str:
        return self.commands.get(model_type, self.commands["sd1"])

    def model_type_of(self, command: str) -> str | None:
        """The model type a run snapshot's command stands for (SD 1.x for the SD command)."""
        if command == self.commands["sdxl"]:
            return "sdxl"
        return "sd1" if command == self.commands["sd1"] else None

    @property
    def shipped_presets(self) -> Path:
        return REPO / "presets" / self.key

    @property
    def user_presets(self) -> Path:
        return REPO / "user_presets" / self.key

    @property
    def tab_label_key(self) -> str:
        """The catalogue key of the tab's name (messages point users to the other tab by it)."""
        return f"ui.tab.{self.key}"

    def elem(self, name: str) -> str:
        return f"{self.id_prefix}{name}"


def kind_options(kind: TrainingKind) -> dict[str, Option]:
    """Every option of the kind's commands that its form shows, as the form sees it: choices limited
    to what the kind's trainers accept and defaults replaced by the kind's own starting values."""
    merged: dict[str, Option] = {}
    for command in dict.fromkeys(kind.commands.values()):
        merged.update(options_for(command))
    shown: dict[str, Option] = {}
    for name, option in merged.items():
        if option.cli_only or option.secret or name in SELECTOR_OPTIONS:
            continue
        if name in kind.choice_limits:
            option = replace(option, choices=kind.choice_limits[name])
        if name in kind.defaults:
            option = replace(option, default=kind.defaults[name])
        shown[name] = option
    return shown



# The trainer's preflight refuses anything else (backend/training/preflight.py LORA_FORMATS and
# finetune_files.py; tests/gui/training/test_schema_form.py keeps the lists equal).
LORA = TrainingKind(
    "lora", {"sd1": "train_network", "sd2": "train_network", "sdxl": "sdxl_train_network"}, True, "",
    {"save_model_as": ("safetensors", "ckpt", "pt")},
    # kohya_ss's LoRA tab: learning rate 1e-4, cosine, dim 8 / alpha 1, fp16 files, `.txt` captions;
    # a run is counted in epochs (10, saved every epoch) rather than sd-scripts' 1,600 steps.
    {
        "learning_rate": 1e-4, "lr_scheduler": "cosine", "max_train_epochs": 10, "max_train_steps": None,
        "save_every_n_epochs": 1, "network_dim": 8, "network_alpha": 1.0, "save_precision": "fp16",
        "caption_extension": ".txt",
    },
    (
        (MODEL_SLOT, "pretrained_model_name_or_path"),
        ("train_data_dir", "caption_extension", "resolution"),
        ("output_dir", "output_name", "save_precision"),
        (NETWORK_SLOT, "network_dim", "network_alpha"),
        (NETWORK_ARGS_SLOT,),  # the chosen network type's own fields, under its shape
        ("max_train_epochs", "max_train_steps", "train_batch_size"),
        ("learning_rate", "mixed_precision"),
    ),
)  # fmt: skip
FINETUNE = TrainingKind(
    "finetune", {"sd1": "fine_tune", "sd2": "fine_tune", "sdxl": "sdxl_train"}, False, "finetune_",
    {"save_model_as": ("safetensors", "ckpt", "diffusers", "diffusers_safetensors")},
    # kohya_ss's Finetuning tab starts at 1e-5; captions are `.txt` in every GUI form.
    {"learning_rate": 1e-5, "caption_extension": ".txt"},
    (
        (MODEL_SLOT, "pretrained_model_name_or_path"),
        ("train_data_dir", "in_json", "caption_extension"),
        ("output_dir", "output_name"),
        ("save_model_as", "save_precision"),
        ("resolution", "max_train_epochs", "max_train_steps"),
        ("train_batch_size", "learning_rate", "mixed_precision"),
    ),
)  # fmt: skip
KINDS = {kind.key: kind for kind in (LORA, FINETUNE)}
