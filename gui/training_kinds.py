"""The two training tabs, LoRA and fine-tuning, as data: which command each model type runs, whether
a network is chosen, where presets live and how its page elements are named.

Both tabs are built by the same code (gui/lora_tab.py, gui/lora_actions.py, gui/presets.py); only
this description differs. The LoRA tab keeps the element ids it always had (`opt_<name>`,
`preset_select`, ...); the fine-tune tab's are prefixed `finetune_`. Action buttons and the progress
area are `<key>_start`, `<key>_status`, ... in both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL_TYPES = ("sd1", "sd2", "sdxl")


@dataclass(frozen=True)
class TrainingKind:
    key: str  # "lora" | "finetune"
    commands: Mapping[str, str]  # model type -> training command
    networks: bool  # a network type selector and network arguments
    id_prefix: str  # prefix of the form's element ids ("" keeps the LoRA tab's historic ids)
    # Choices of shared options that this kind's commands accept (the schema lists every command's):
    # the form offers only these, so a LoRA cannot be set to save as a diffusers folder.
    choice_limits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

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

    def elem(self, name: str) -> str:
        return f"{self.id_prefix}{name}"


# The trainer's preflight refuses anything else (backend/training/preflight.py LORA_FORMATS and
# finetune_files.py; tests/gui/test_schema_form.py keeps the lists equal).
LORA = TrainingKind(
    "lora", {"sd1": "train_network", "sd2": "train_network", "sdxl": "sdxl_train_network"}, True, "",
    {"save_model_as": ("safetensors", "ckpt", "pt")},
)
FINETUNE = TrainingKind(
    "finetune", {"sd1": "fine_tune", "sd2": "fine_tune", "sdxl": "sdxl_train"}, False, "finetune_",
    {"save_model_as": ("safetensors", "ckpt", "diffusers", "diffusers_safetensors")},
)
