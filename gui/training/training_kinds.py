"""The training tabs, LoRA, DreamBooth, fine-tuning, Textual Inversion, LECO and video, as data: which model types each trains and with which
command (from the model families: gui/training/model_types.py), whether a network is chosen, where
presets live, which values a new form starts from, which options come first, and how its page
elements are named.

All tabs are built by the same code (gui/training/lora_tab.py, gui/training/lora_actions.py, gui/training/presets.py); only
this description differs. The LoRA tab keeps the element ids it always had (`opt_<name>`,
`preset_select`, ...); the fine-tune tab's are prefixed `finetune_`, the video tab's `video_`. Action buttons and the progress
area are `<key>_start`, `<key>_status`, ... in both.

Pure data plus the option schema (no gradio, no torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from backend.options.schema import Option, options_for
from gui.training.model_types import (
    ModelType,
    all_model_types,
    implied_option_names,
    kind_model_types,
    same_value,
)

REPO = Path(__file__).resolve().parents[2]
# Set by the model and network selectors rather than shown as fields (the model type stands for the
# options it implies: SD 2.x is v2).
SELECTOR_OPTIONS = (*implied_option_names(all_model_types()), "network_module")
# Places in the essentials rows for widgets that are not options (gui/training/lora_tab.py renders them).
MODEL_SLOT, NETWORK_SLOT, NETWORK_ARGS_SLOT = "@model_type", "@network_type", "@network_args"
# The LECO page's "new prompt file" row (gui/training/leco_prompt_files.py), under the prompts_file field.
PROMPT_FILE_SLOT = "@prompt_file"
SLOTS = (MODEL_SLOT, NETWORK_SLOT, NETWORK_ARGS_SLOT, PROMPT_FILE_SLOT)


@dataclass(frozen=True)
class TrainingKind:
    key: str  # "lora" | "dreambooth" | "finetune" | "textual_inversion" | "leco" | "video"
    # What the model type selector offers, in order (the first is a new form's): the declared families
    # with a command for this kind (`kind_model_types(key)`).
    model_types: tuple[ModelType, ...]
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
    # Its trainer's samples are videos (mp4): the progress panel shows the newest in a player.
    video_samples: bool = False
    # Options the kind's commands take (as sd-scripts' scripts parse them) that its form leaves out: preflight
    # refuses them there (LECO: --max_train_epochs, --network_train_text_encoder_only).
    hidden: tuple[str, ...] = ()

    @property
    def essentials(self) -> tuple[str, ...]:
        """The options of the essentials section, in page order."""
        return tuple(name for row in self.essential_rows for name in row if name not in SLOTS)

    @property
    def commands(self) -> dict[str, str]:
        """Model type name -> the command that trains it in this kind."""
        return {model_type.name: model_type.commands[self.key] for model_type in self.model_types}

    @property
    def model_type_names(self) -> tuple[str, ...]:
        return tuple(model_type.name for model_type in self.model_types)

    @property
    def default_model_type(self) -> str:
        return self.model_types[0].name

    def model_type(self, name: str | None) -> ModelType:
        """The model type called `name`; the default one for an unknown name (or None)."""
        return next((m for m in self.model_types if m.name == name), self.model_types[0])

    def command_for(self, model_type: str | None) -> str:
        return self.model_type(model_type).commands[self.key]

    def model_type_of(self, command: str, values: Mapping[str, Any] | None = None) -> str | None:
        """The model type a run of `command` with option `values` is (a run snapshot, an imported
        config): of the types the command trains, the first whose implied values `values` hold, else
        the command's first (train_network: SD 2.x with v2, SD 1.x without). None: not this kind's."""
        candidates = [m for m in self.model_types if m.commands[self.key] == command]
        matching = [m.name for m in candidates if m.matches(values or {})]
        return (matching or [m.name for m in candidates] or [None])[0]

    def model_type_implied_by(self, values: Mapping[str, Any]) -> str | None:
        """The model type that values naming no model type stand for through the options it implies
        (a preset with "v2": true is SD 2.x); None when they imply none."""
        for model_type in self.model_types:
            marks = model_type.distinguishing_options()
            if marks and all(same_value(values.get(name), value) for name, value in marks.items()):
                return model_type.name
        return None

    def implied_values(self) -> dict[str, tuple[Any, ...]]:
        """Option -> the values of it that stand for a model type (v2: true)."""
        found: dict[str, tuple[Any, ...]] = {}
        for model_type in self.model_types:
            for name, value in model_type.distinguishing_options().items():
                found[name] = (*found.get(name, ()), value)
        return found

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
        if option.cli_only or option.secret or name in SELECTOR_OPTIONS or name in kind.hidden:
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
    "lora", kind_model_types("lora"), True, "",
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
    "finetune", kind_model_types("finetune"), False, "finetune_",
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
# kohya_ss's DreamBooth tab: a full fine-tune from '<repeats>_<instance> <class>' folders with regularization images,
# with train_db for SD 1.x/2.x (its text encoder trains until --stop_text_encoder_training) and the other families'
# fine-tune commands. kohya_ss's DreamBooth tab starts at 1e-5 too.
DREAMBOOTH = TrainingKind(
    "dreambooth", kind_model_types("dreambooth"), False, "dreambooth_",
    {"save_model_as": ("safetensors", "ckpt", "diffusers", "diffusers_safetensors")},
    {"learning_rate": 1e-5, "caption_extension": ".txt"},
    (
        (MODEL_SLOT, "pretrained_model_name_or_path"),
        ("train_data_dir", "reg_data_dir", "caption_extension"),
        ("output_dir", "output_name"),
        ("save_model_as", "save_precision"),
        ("resolution", "max_train_epochs", "max_train_steps"),
        ("train_batch_size", "learning_rate", "mixed_precision"),
        ("prior_loss_weight",),
    ),
)  # fmt: skip
# kohya_ss's Textual Inversion tab (train_textual_inversion, sdxl_train_textual_inversion): a new word's vectors
# trained in the frozen model. 5e-3 is A1111's embedding rate; kohya_ss's tab starts at 1e-5, which barely moves
# vectors of this size in the 1,600 steps it trains by default.
TEXTUAL_INVERSION = TrainingKind(
    "textual_inversion", kind_model_types("textual_inversion"), False, "ti_",
    {"save_model_as": ("safetensors", "pt", "ckpt")},
    {"learning_rate": 5e-3, "caption_extension": ".txt", "num_vectors_per_token": 4},
    (
        (MODEL_SLOT, "pretrained_model_name_or_path"),
        ("token_string", "init_word", "num_vectors_per_token"),
        ("train_data_dir", "reg_data_dir", "caption_extension"),
        ("use_object_template", "use_style_template"),
        ("output_dir", "output_name"),
        ("save_model_as", "save_precision"),
        ("resolution", "max_train_epochs", "max_train_steps"),
        ("train_batch_size", "learning_rate", "mixed_precision"),
    ),
)  # fmt: skip
# kohya_ss's LECO tab (sd-scripts' train_leco, sdxl_train_leco): a U-Net LoRA trained from a prompt file alone, no
# images, so no dataset section. Starting values from sd-scripts' docs/train_leco.md: dim 8 / alpha 4, 1e-4, 500 steps
# (LECO counts steps only: no epochs), a file every 100 steps; fp16 files as the LoRA page saves them.
LECO = TrainingKind(
    "leco", kind_model_types("leco"), True, "leco_",
    {"save_model_as": ("safetensors", "ckpt", "pt")},
    {
        "learning_rate": 1e-4, "max_train_steps": 500, "save_every_n_steps": 100, "network_dim": 8,
        "network_alpha": 4.0, "save_precision": "fp16",
    },
    (
        (MODEL_SLOT, "pretrained_model_name_or_path"),
        ("prompts_file", "max_denoising_steps", "leco_denoise_guidance_scale"),
        (PROMPT_FILE_SLOT,),  # a commented starting prompt file, written on request
        ("output_dir", "output_name", "save_precision"),
        (NETWORK_SLOT, "network_dim", "network_alpha"),
        (NETWORK_ARGS_SLOT,),
        ("max_train_steps", "save_every_n_steps", "learning_rate"),
        ("mixed_precision",),
    ),
    hidden=("max_train_epochs", "network_train_text_encoder_only"),  # LECO counts steps and trains the U-Net only
)  # fmt: skip
# finetrainers' command for the video families (`train_video`, finetrainers' flag names): LoRA or a full
# fine-tune is its `training_type` option, so there is no network selector; the model type sets `model_name`.
VIDEO = TrainingKind(
    "video", kind_model_types("video"), False, "video_", {},
    # finetrainers' example LoRA runs (examples/training/sft/*/crush_smol_lora): rank and alpha 32, lr 5e-5,
    # a few thousand steps with checkpoints every 500 (two kept); gradient checkpointing, as nearly every
    # video run on one card needs it.
    {
        "training_type": "lora", "rank": 32, "lora_alpha": 32, "lr": 5e-5, "train_steps": 2000,
        "checkpointing_steps": 500, "checkpointing_limit": 2, "gradient_checkpointing": True,
    },
    (
        (MODEL_SLOT, "pretrained_model_name_or_path"),
        ("data_root", "dataset_config", "video_resolution_buckets"),
        ("output_dir", "training_type"),
        ("rank", "lora_alpha", "lr"),
        ("train_steps", "checkpointing_steps", "batch_size"),
        ("validation_prompts", "validation_steps"),
    ),
    video_samples=True,
)  # fmt: skip
KINDS = {kind.key: kind for kind in (LORA, DREAMBOOTH, FINETUNE, TEXTUAL_INVERSION, LECO, VIDEO)}
