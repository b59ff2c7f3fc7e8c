"""The conversion behind `gui.kohya_import`: one pass over a kohya_ss LoRA, DreamBooth, Fine-tuning, Textual
Inversion or LECO config, key by key.

The kind of config is told by the keys only its tab saves (`config_kind`); a DreamBooth config trains with
train_db (SD 1.x/2.x) or the family's fine-tune command, as kohya_ss's DreamBooth tab starts them, and has no
network (`dreambooth_steps.py`); a Fine-tuning config trains with fine_tune or the family's fine-tune command,
from the metadata file it names (`finetune_steps.py`); a Textual Inversion config trains with
train_textual_inversion or sdxl_train_textual_inversion (`textual_inversion_steps.py`); a LECO config trains with
train_leco or sdxl_train_leco, from the prompt file it names (`leco_steps.py`).

Each step takes the kohya_ss keys it handles; a key no step takes keeps its name when it is one of
our options, and is reported otherwise. The tables are in `tables.py` (keys) and
`network.py` (LoRA types); value shapes in `values.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backend import families
from backend.messages import msg
from backend.options.schema import options_for
from backend.options.values import show
from gui.kohya_import.dreambooth_steps import DreamBoothSteps
from gui.kohya_import.finetune_steps import FineTuneSteps
from gui.kohya_import.flux_steps import FluxSteps
from gui.kohya_import.leco_steps import LecoSteps
from gui.kohya_import.model_choice import ModelChoiceError, choose_model_type
from gui.kohya_import.network import SHAPE_DEFAULTS, UnsupportedNetwork, network_plan
from gui.kohya_import.sd3_steps import Sd3Steps
from gui.kohya_import.tables import (
    FAMILY_CHECKBOXES,
    FAMILY_LORA_TYPES,
    FINETUNE_CHECKBOXES,
    KOHYA_DEFAULTS,
    MODEL_CHECKBOXES,
    NAME_HINTS,
    NO_CHECKBOX_FAMILY,
    SAME_AS_UNSET,
    ZERO_IS_A_VALUE,
)
from gui.kohya_import.textual_inversion_steps import TextualInversionSteps
from gui.kohya_import.value_steps import HIDDEN, ValueSteps, _checked, _chosen_empty, _default, _is_unset
from gui.kohya_import.values import coerce, is_empty, plain

# Why a key found no home, in the order the report lists them.
REASONS = {
    "prepare": "Metadata steps kohya_ss ran before training (run them with this trainer's tools)",
    "secret": "Dropped for safety (secrets are never carried over)",
    "invalid": "Values the trainer would reject",
    "not_implemented": "sd-scripts options this trainer does not implement",
    "other_command": "Options the target command does not take",
    "not_used": "Not used with these settings (kohya_ss did not use them either)",
    "launch": "accelerate settings the GUI does not set (add them to the launch command yourself)",
    "other_model": "Settings of model families this trainer does not train (kohya_ss ignores them for SD/SDXL/FLUX.1/SD3)",
    "unknown": "Not kohya_ss LoRA settings",
}


class KohyaImportError(ValueError):
    """Not a kohya_ss config of a kind that imports, or one for a model/network this trainer cannot train."""


# The kohya_ss tabs whose configs import ("lora", "dreambooth", "finetune", "textual_inversion", "leco": the training
# kinds of gui/training/training_kinds.py), and the keys only each kind's save holds (kohya_ss v21-v26), tested in
# this order: a LECO save holds network_dim too.
CONFIG_MARKS = {
    "leco": ("prompts_file", "max_denoising_steps", "leco_denoise_guidance_scale"),
    "lora": ("LoRA_type", "network_dim"),
    "textual_inversion": ("token_string", "init_word", "num_vectors_per_token"),
    "finetune": ("caption_metadata_filename", "latent_metadata_filename", "train_dir", "image_folder"),
    "dreambooth": ("stop_text_encoder_training", "no_token_padding", "learning_rate_te"),
}
IMPORTED_KINDS = ("lora", "dreambooth", "finetune", "textual_inversion", "leco")


def config_kind(data: Mapping[str, Any]) -> str | None:
    """Which kohya_ss tab saved `data` (a CONFIG_MARKS key), None when none did."""
    for kind, marks in CONFIG_MARKS.items():
        if set(marks) & set(data):
            return kind
    return None


def _tab_name(kind: str) -> str:
    return {"lora": "LoRA", "dreambooth": "DreamBooth", "finetune": "Fine-tuning",
            "textual_inversion": "Textual Inversion", "leco": "LECO"}[kind]


@dataclass(frozen=True)
class Unmapped:
    key: str  # the kohya_ss key, or "--flag" from additional_parameters
    value: Any  # HIDDEN for secrets
    reason: str  # a REASONS key
    detail: str


@dataclass
class ImportResult:
    command: str  # LoRA: "train_network", ...; DreamBooth: "train_db", "sdxl_train", ...; LECO: "train_leco", ...
    options: dict[str, Any]  # option name -> value, schema-checked, defaults left out, no secrets
    network_type: str  # for the GUI's network selector (NETWORK_TYPES); "" for a config with no network
    launch: dict[str, Any]  # accelerate launch settings (gui.training.command_builder.ACCELERATE_FLAGS names)
    sample_prompts_text: str | None  # to write to a prompt file that options["sample_prompts"] names
    unmapped: list[Unmapped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The model type (a family's name) when the model file or its name chose among those the command
    # trains (FLUX.1 dev or schnell); None: the command and options tell it (v2: SD 2.x).
    model_type: str | None = None


def convert_kohya_config(data: Mapping[str, Any], kind: str | None = None) -> ImportResult:
    """Map a kohya_ss LoRA, DreamBooth, Fine-tuning, Textual Inversion or LECO config (any version) to a run of ours; `kind`
    (one of IMPORTED_KINDS): the GUI page importing it, which only takes its own kind (None: any). KohyaImportError if
    it cannot be."""
    found = config_kind(data) if isinstance(data, Mapping) else None
    if found is None:
        raise KohyaImportError(msg(
            "gui.kohya.not_a_config",
            "not a kohya_ss LoRA, DreamBooth, Fine-tuning, Textual Inversion or LECO config: it has neither LoRA_type "
            "nor network_dim (LoRA) nor stop_text_encoder_training, no_token_padding or learning_rate_te (DreamBooth) "
            "nor image_folder, train_dir or caption_metadata_filename (Fine-tuning) nor token_string, init_word or "
            "num_vectors_per_token (Textual Inversion) nor prompts_file, max_denoising_steps or "
            "leco_denoise_guidance_scale (LECO)",
        ))  # fmt: skip
    if found not in IMPORTED_KINDS:
        raise KohyaImportError(msg(
            "gui.kohya.kind_not_imported", "a kohya_ss {tab} config: only {kinds} configs import so far",
            tab=_tab_name(str(found)), kinds=", ".join(_tab_name(kind) for kind in IMPORTED_KINDS)))
    if kind is not None and found != kind:
        raise KohyaImportError(msg(
            "gui.kohya.other_page", "a kohya_ss {tab} config: import it on the {tab} page", tab=_tab_name(found)))
    assert isinstance(data, Mapping)
    return _Converter(data, found).run()


class _Converter(ValueSteps, FluxSteps, Sd3Steps, DreamBoothSteps, FineTuneSteps, TextualInversionSteps, LecoSteps):
    """One conversion; each step takes the kohya_ss keys it handles (`_take`), the rest keep their names."""

    def __init__(self, data: Mapping[str, Any], kind: str = "lora"):
        self.kind = kind
        self.data = dict(data)
        self.todo = dict(data)  # keys not handled yet
        self.options: dict[str, Any] = {}
        self.launch: dict[str, Any] = {}
        self.unmapped: list[Unmapped] = []
        self.warnings: list[str] = []
        self.prompts: str | None = None
        self.model_type: str | None = None
        # Applied last (they followed --config_file on kohya_ss's command line), so taken first.
        self.extra = self._take("additional_parameters")

    def run(self) -> ImportResult:
        self.command = self._command()
        self.schema = options_for(self.command)
        self._legacy()
        network_type = self._network() if self.kind == "lora" else self._leco() if self.kind == "leco" else ""
        if self.kind == "dreambooth":
            self._dreambooth()
        if self.kind == "finetune":
            self._finetune()
        if self.kind == "textual_inversion":
            self._textual_inversion()
        for step in (
            self._learning_rates, self._duration, self._warmup, self._attention, self._noise,
            self._checkbox_settings, self._sd3, self._flux, self._launch, self._samples, self._no_option, self._same_name,
            self._extra_parameters,
        ):  # fmt: skip
            step()
        self._check_text_cache()
        options = {name: self.options[name] for name in self.schema if name in self.options}
        return ImportResult(
            self.command, options, network_type, self.launch, self.prompts, self.unmapped, self.warnings,
            self.model_type,
        )

    # --- bookkeeping ------------------------------------------------------------------------------

    def _take(self, key: str) -> Any:
        self.todo.pop(key, None)
        return self.data.get(key)

    def _report(self, key: str, value: Any, reason: str, detail: str) -> None:
        self.todo.pop(key, None)
        self.unmapped.append(Unmapped(key, value, reason, detail))

    def _report_if_set(self, key: str, value: Any, reason: str, detail: str, default: Any = None) -> None:
        """Report `key` unless its value is empty or the kohya_ss default (then it is dropped silently)."""
        self.todo.pop(key, None)
        value = plain(value)
        if _is_unset(key, value) or value == plain(default) or value == SAME_AS_UNSET.get(key):
            return
        self.unmapped.append(Unmapped(key, value, reason, detail))

    def _set(
        self, name: str, value: Any, source: str, explicit: bool = False, note_default: bool = True
    ) -> None:
        """Our option `name` from kohya_ss's `value` (key `source`). kohya_ss leaves empty and zero
        values out, so they mean the default, unless `explicit` (a flag typed by the user). An option
        the command does not take (DDPM noise settings for FLUX.1) is reported when set."""
        if name not in self.schema:
            reason, detail = self._classify(name)
            self._report_if_set(source, value, reason, detail, KOHYA_DEFAULTS.get(source))
            return
        option = self.schema[name]
        if option.secret:
            self._report(source, HIDDEN, "secret", msg("gui.kohya.secret_option", "the {name} option is a secret", name=name))
            return
        if not explicit and _is_unset(name, value) and name not in ZERO_IS_A_VALUE:
            if note_default and source in self.data and _chosen_empty(option, source, value):
                self.warnings.append(msg(
                    "gui.kohya.empty_is_default",
                    "{key} = {value}: kohya_ss does not pass empty or zero values, so sd-scripts used its default "
                    "{name} = {default}; so does this import",
                    key=source, value=show(value), name=name, default=show(option.default),
                ))  # fmt: skip
            return
        try:
            value = coerce(option, value)
        except ValueError as error:
            if option.default is not None:
                detail = msg(
                    "gui.kohya.invalid_default", "{name} {error}; left out, so the default {default}",
                    name=name, error=str(error), default=show(_default(option)),
                )  # fmt: skip
            else:
                detail = msg("gui.kohya.invalid_unset", "{name} {error}; left out, so it stays unset", name=name, error=str(error))
            self._report(source, value, "invalid", detail)
            return
        if value == _default(option) or value == SAME_AS_UNSET.get(name):
            self.options.pop(name, None)
        else:
            self.options[name] = value

    # --- the steps ------------------------------------------------------------------------------

    def _command(self) -> str:
        for key, family in MODEL_CHECKBOXES.items():
            if _checked(self.data.get(key)):
                raise KohyaImportError(msg(
                    "gui.kohya.other_family_config",
                    "this is a kohya_ss {family} LoRA config ({key} is on); this trainer trains SD 1.x, SD 2.x, "
                    "SDXL, FLUX.1 and SD 3.5 only",
                    family=family, key=key,
                ))  # fmt: skip
        # Every checkbox is taken (handled), the first one on picks the family (kohya_ss's order, the Finetuning
        # tab's own: its SDXL checkbox is saved as sdxl_checkbox); self.checkbox is the name FAMILY_CHECKBOXES uses.
        boxes = FINETUNE_CHECKBOXES if self.kind == "finetune" else {key: key for key in FAMILY_CHECKBOXES}
        checked = [name for key, name in boxes.items() if _checked(self._take(key))]
        lora_type = self.data.get("LoRA_type")
        if lora_type in FAMILY_LORA_TYPES and FAMILY_LORA_TYPES[lora_type] not in checked[:1]:
            if checked:
                raise KohyaImportError(msg(
                    "gui.kohya.type_needs_checkbox",
                    'LoRA type "{lora_type}" needs {needed} on, but {checkbox} is on (kohya_ss cannot train this '
                    "config either); turn {checkbox} off or choose another LoRA type",
                    lora_type=lora_type, needed=FAMILY_LORA_TYPES[lora_type], checkbox=checked[0],
                ))  # fmt: skip
            checked = [FAMILY_LORA_TYPES[lora_type]]
            self.warnings.append(msg(
                "gui.kohya.type_picks_model",
                'LoRA type "{lora_type}" with {checkbox} off: kohya_ss started train_network.py, which cannot train it; '
                "imported as {checkbox} on",
                lora_type=lora_type, checkbox=checked[0],
            ))  # fmt: skip
        self.checkbox = checked[0] if checked else None
        family = FAMILY_CHECKBOXES[self.checkbox] if self.checkbox else NO_CHECKBOX_FAMILY
        command = families.declaration(family).commands[self.kind]
        if self.checkbox in NAME_HINTS:
            self._choose_model_type(command)
        return command

    def _choose_model_type(self, command: str) -> None:
        """The model file (or its name) picks one of the model types the checkbox stands for (FLUX.1 dev
        or schnell, Chroma); kohya_ss's model_type (sd-scripts' --model_type) puts its types first and must
        not contradict the file. The report says which and why."""
        assert self.checkbox is not None
        given = str(self.data.get("model_type") or "").strip().lower()
        candidates = families.for_command(command)
        if given:  # the types it implies first: the default when the file is not here
            candidates = tuple(sorted(candidates, key=lambda d: d.implied_options.get("model_type", given) != given))
        try:
            choice = choose_model_type(
                self.data.get("pretrained_model_name_or_path") or "", candidates, NAME_HINTS[self.checkbox],
                self.checkbox,
            )  # fmt: skip
        except ModelChoiceError as error:
            raise KohyaImportError(str(error)) from None
        implied = families.declaration(choice.family).implied_options.get("model_type")
        if given and implied is not None and implied != given:
            raise KohyaImportError(msg(
                "gui.kohya.model_type_contradicts",
                'model_type "{given}", but the base model is {label} ({reason}): set model_type to "{wanted}"',
                given=given, label=families.label(choice.family), reason=choice.reason, wanted=implied,
            ))  # fmt: skip
        self.model_type = choice.family
        self.warnings.insert(0, msg(
            "gui.kohya.model_chosen", "{checkbox} -> model type {label}: {reason}",
            checkbox=self.checkbox, label=families.label(choice.family), reason=choice.reason,
        ))  # fmt: skip

    def _legacy(self) -> None:
        """What kohya_ss's update_my_data does to configs saved by older versions."""
        use_8bit_adam = _checked(self._take("use_8bit_adam"))
        if "optimizer" not in self.data:
            self.data["optimizer"] = self.todo["optimizer"] = "AdamW8bit" if use_8bit_adam else "AdamW"
            if use_8bit_adam:
                self.warnings.append(msg(
                    "gui.kohya.use_8bit_adam", "use_8bit_adam (kohya_ss before 2023-02) -> optimizer_type AdamW8bit"
                ))  # fmt: skip
        elif use_8bit_adam:
            detail = msg("gui.kohya.optimizer_also_saved", "an optimizer is also saved; kohya_ss uses that")
            self._report("use_8bit_adam", True, "not_used", detail)
        if _checked(self._take("use_wandb")) and is_empty(self.data.get("log_with")):
            self.data["log_with"] = self.todo["log_with"] = "wandb"
            self.warnings.append(msg("gui.kohya.use_wandb", "use_wandb (kohya_ss before 2023-06) -> log_with wandb"))
        if self.data.get("log_with") in ("tensorboard", "all") and is_empty(self.data.get("logging_dir")):
            # sd-scripts stops such a run (TensorBoard writes into logging_dir): the config trains without logs.
            self._report("log_with", self._take("log_with"), "invalid", msg(
                "gui.kohya.log_with_no_dir", "TensorBoard logs need logging_dir, which the config leaves empty "
                "(sd-scripts stops the run); set logging_dir to log"))

    def _network(self) -> str:
        """network_module/network_args from LoRA_type; shape fields that type does not use are reported."""
        try:
            plan = network_plan(self.data, self.data.get("network_dim"))
        except UnsupportedNetwork as error:
            raise KohyaImportError(str(error)) from None
        lora_type = self._take("LoRA_type") or "Standard"
        wanted = [t for t, checkbox in FAMILY_LORA_TYPES.items() if checkbox == self.checkbox]
        if wanted and lora_type not in wanted:
            raise KohyaImportError(msg(
                "gui.kohya.checkbox_needs_type",
                '{checkbox} is on with LoRA type "{lora_type}": kohya_ss trains this model only with LoRA type '
                '"{wanted}" (it refuses this config too), whose layers sd-scripts names after the model\'s own; set '
                "LoRA type to {wanted} in kohya_ss",
                checkbox=self.checkbox, lora_type=lora_type, wanted=wanted[0],
            ))  # fmt: skip
        self._set("network_module", plan.module, "LoRA_type")
        if plan.args:
            self._set("network_args", plan.args, "LoRA_type")
        self.warnings += plan.warnings
        for key in plan.used:  # network fields of the type (FLUX.1's too)
            self._take(key)
        for key, default in SHAPE_DEFAULTS.items():
            if key in plan.used:
                continue
            else:
                detail = msg("gui.kohya.not_used_by_type", 'not used by LoRA type "{lora_type}"', lora_type=lora_type)
                self._report_if_set(key, self.data.get(key), "not_used", detail, default)
        return plan.network_type
