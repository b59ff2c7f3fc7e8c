"""The conversion behind `gui.kohya_import`: one pass over a kohya_ss LoRA config, key by key.

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
from backend.options.names import names_for, unknown_name_message
from backend.options.schema import Option, all_options, options_for
from backend.options.sd_scripts_flags import sd_scripts_flags
from backend.options.values import show
from backend.training.attention import xformers_installed
from gui.kohya_import.network import SHAPE_DEFAULTS, UnsupportedNetwork, network_plan
from gui.kohya_import.tables import (
    CHECKBOX_RENAMED,
    EMPTY_SPELLINGS,
    FAMILY_CHECKBOXES,
    KOHYA_DEFAULTS,
    LAUNCH_EXTRA_KEYS,
    LAUNCH_KEYS,
    MODEL_CHECKBOXES,
    NO_CHECKBOX_FAMILY,
    NO_OPTION,
    OTHER_MODELS,
    RENAMED,
    SAME_AS_UNSET,
    SECRETS,
    SECTION_OF,
    SILENT,
    ZERO_IS_A_VALUE,
)
from gui.kohya_import.values import coerce, flag_value, is_empty, plain, split_flags
from gui.training.command_builder import ACCELERATE_FLAGS

# Why a key found no home, in the order the report lists them.
REASONS = {
    "secret": "Dropped for safety (secrets are never carried over)",
    "invalid": "Values the trainer would reject",
    "not_implemented": "sd-scripts options this trainer does not implement",
    "other_command": "Options the target command does not take",
    "not_used": "Not used with these settings (kohya_ss did not use them either)",
    "launch": "accelerate settings the GUI does not set (add them to the launch command yourself)",
    "other_model": "Settings of model families this trainer does not train (kohya_ss ignores them for SD/SDXL)",
    "unknown": "Not kohya_ss LoRA settings",
}
HIDDEN = "<hidden>"


class KohyaImportError(ValueError):
    """Not a kohya_ss LoRA config, or one for a model/network this trainer cannot train."""


@dataclass(frozen=True)
class Unmapped:
    key: str  # the kohya_ss key, or "--flag" from additional_parameters
    value: Any  # HIDDEN for secrets
    reason: str  # a REASONS key
    detail: str


@dataclass
class ImportResult:
    command: str  # "train_network" or "sdxl_train_network"
    options: dict[str, Any]  # option name -> value, schema-checked, defaults left out, no secrets
    network_type: str  # for the GUI's network selector (NETWORK_TYPES)
    launch: dict[str, Any]  # accelerate launch settings (gui.training.command_builder.ACCELERATE_FLAGS names)
    sample_prompts_text: str | None  # to write to a prompt file that options["sample_prompts"] names
    unmapped: list[Unmapped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def convert_kohya_config(data: Mapping[str, Any]) -> ImportResult:
    """Map a kohya_ss LoRA config (any version) to a run of ours; KohyaImportError if it cannot be."""
    if not isinstance(data, Mapping) or not ({"LoRA_type", "network_dim"} & set(data)):
        raise KohyaImportError(msg(
            "gui.kohya.not_lora_config",
            "not a kohya_ss LoRA config: it has neither LoRA_type nor network_dim "
            "(DreamBooth, fine-tuning and textual inversion configs are not LoRA configs)",
        ))  # fmt: skip
    return _Converter(data).run()


class _Converter:
    """One conversion; each step takes the kohya_ss keys it handles (`_take`), the rest keep their names."""

    def __init__(self, data: Mapping[str, Any]):
        self.data = dict(data)
        self.todo = dict(data)  # keys not handled yet
        self.options: dict[str, Any] = {}
        self.launch: dict[str, Any] = {}
        self.unmapped: list[Unmapped] = []
        self.warnings: list[str] = []
        self.prompts: str | None = None
        # Applied last (they followed --config_file on kohya_ss's command line), so taken first.
        self.extra = self._take("additional_parameters")

    def run(self) -> ImportResult:
        self.command = self._command()
        self.schema = options_for(self.command)
        self._legacy()
        network_type = self._network()
        for step in (
            self._learning_rates, self._duration, self._warmup, self._attention, self._noise,
            self._checkbox_settings, self._launch, self._samples, self._no_option, self._same_name,
            self._extra_parameters,
        ):  # fmt: skip
            step()
        self._check_text_cache()
        options = {name: self.options[name] for name in self.schema if name in self.options}
        return ImportResult(
            self.command, options, network_type, self.launch, self.prompts, self.unmapped, self.warnings
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
        values out, so they mean the default, unless `explicit` (a flag typed by the user)."""
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
                    "this is a kohya_ss {family} LoRA config ({key} is on); this trainer trains SD 1.x, SD 2.x and "
                    "SDXL only",
                    family=family, key=key,
                ))  # fmt: skip
        # Every checkbox is taken (handled), the first one on picks the family.
        checked = [key for key in FAMILY_CHECKBOXES if _checked(self._take(key))]
        self.checkbox = checked[0] if checked else None
        family = FAMILY_CHECKBOXES[self.checkbox] if self.checkbox else NO_CHECKBOX_FAMILY
        return families.declaration(family).commands["lora"]

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

    def _network(self) -> str:
        """network_module/network_args from LoRA_type; shape fields that type does not use are reported."""
        try:
            plan = network_plan(self.data, self.data.get("network_dim"))
        except UnsupportedNetwork as error:
            raise KohyaImportError(str(error)) from None
        lora_type = self._take("LoRA_type") or "Standard"
        self._set("network_module", plan.module, "LoRA_type")
        if plan.args:
            self._set("network_args", plan.args, "LoRA_type")
        self.warnings += plan.warnings
        for key, default in SHAPE_DEFAULTS.items():
            if key in plan.used:
                self._take(key)
            else:
                detail = msg("gui.kohya.not_used_by_type", 'not used by LoRA type "{lora_type}"', lora_type=lora_type)
                self._report_if_set(key, self.data.get(key), "not_used", detail, default)
        return plan.network_type

    def _learning_rates(self) -> None:
        """As kohya_ss: a 0 text encoder LR with a U-Net LR trains the U-Net only, and the reverse."""
        lr, te_lr, unet_lr = (
            plain(self._take(key)) for key in ("learning_rate", "text_encoder_lr", "unet_lr")
        )
        self._set("learning_rate", lr, "learning_rate", note_default=False)
        self._set("text_encoder_lr", te_lr, "text_encoder_lr", note_default=False)
        self._set("unet_lr", unet_lr, "unet_lr", note_default=False)
        if is_empty(te_lr) and not is_empty(unet_lr):
            self._set("network_train_unet_only", True, "text_encoder_lr")
        if is_empty(unet_lr) and not is_empty(te_lr):
            self._set("network_train_text_encoder_only", True, "unet_lr")
        if is_empty(lr) and is_empty(te_lr) and is_empty(unet_lr):
            self.warnings.append(msg(
                "gui.kohya.no_learning_rate",
                "no learning rate is set (kohya_ss refuses to start); the trainer's default learning_rate "
                "{default} applies",
                default=show(self.schema["learning_rate"].default),
            ))  # fmt: skip

    def _duration(self) -> None:
        """kohya_ss turns Epoch into max_train_steps (from the image folders) only when neither
        max_train_epochs nor max_train_steps is set and there is no dataset config."""
        epoch, epochs, steps = (
            plain(self._take(key)) for key in ("epoch", "max_train_epochs", "max_train_steps")
        )
        self._set("max_train_epochs", epochs, "max_train_epochs")
        self._set("max_train_steps", steps, "max_train_steps", note_default=False)
        if is_empty(epochs) and is_empty(steps) and not is_empty(epoch):
            if is_empty(self.data.get("dataset_config")):
                self._set("max_train_epochs", epoch, "epoch")
                self.warnings.append(msg(
                    "gui.kohya.epoch_as_epochs",
                    "epoch {epoch}: kohya_ss turned it into max_train_steps from the image folders; "
                    "max_train_epochs = {epoch} trains the same number of epochs",
                    epoch=epoch,
                ))  # fmt: skip
            else:
                self.warnings.append(msg(
                    "gui.kohya.epoch_ignored",
                    "epoch {epoch} with a dataset config and no max_train_steps: kohya_ss ignored the epoch "
                    "count and sd-scripts trained its default 1600 steps; so does this import. Set "
                    "max_train_epochs = {epoch} to train {epoch} epochs",
                    epoch=epoch,
                ))  # fmt: skip
        cycles = self._take("lr_scheduler_num_cycles")
        if cycles == "" and not is_empty(epoch):
            cycles = epoch  # kohya_ss: an empty "LR number of cycles" means one per epoch
        self._set("lr_scheduler_num_cycles", cycles, "lr_scheduler_num_cycles")

    def _warmup(self) -> None:
        """lr_warmup is a percentage of the total steps: our lr_warmup_steps takes it as a ratio."""
        percent, steps = plain(self._take("lr_warmup")), plain(self._take("lr_warmup_steps"))
        if not is_empty(steps):
            value: Any = int(float(steps))  # kohya_ss's int(): a count, never a ratio
            if not is_empty(percent):
                self.warnings.append(msg(
                    "gui.kohya.warmup_steps_win",
                    "lr_warmup_steps {steps} and lr_warmup {percent}%: the steps win, as in kohya_ss",
                    steps=steps, percent=percent,
                ))  # fmt: skip
        elif not is_empty(percent):
            value = min(float(percent) / 100, 0.99)  # a float >= 1 would be read as a step count
            self.warnings.append(msg(
                "gui.kohya.warmup_ratio", "lr_warmup {percent}% of the steps -> lr_warmup_steps = {value} (a ratio)",
                percent=percent, value=value,
            ))  # fmt: skip
        else:
            return
        scheduler = self.data.get("lr_scheduler") or "constant"
        optimizer = str(self.data.get("optimizer") or "")
        # Whole sentences per cause: the translations put the cause elsewhere in the sentence.
        if not is_empty(self.data.get("lr_scheduler_type")):
            dropped = msg(
                "gui.kohya.warmup_dropped_scheduler_type",
                "the LR warmup is dropped: lr_scheduler_type {value} takes none (kohya_ss zeroes it for constant)",
                value=self.data["lr_scheduler_type"],
            )
        elif optimizer.endswith("ScheduleFree"):
            dropped = msg(
                "gui.kohya.warmup_dropped_optimizer",
                "the LR warmup is dropped: the {optimizer} optimizer takes none (kohya_ss zeroes it for constant)",
                optimizer=optimizer,
            )
        elif scheduler in ("constant", "adafactor"):
            dropped = msg(
                "gui.kohya.warmup_dropped_scheduler",
                "the LR warmup is dropped: lr_scheduler {scheduler} takes none (kohya_ss zeroes it for constant)",
                scheduler=scheduler,
            )
        else:
            dropped = None
        if dropped:
            self.warnings.append(dropped)
            return
        self._set("lr_warmup_steps", value, "lr_warmup_steps" if not is_empty(steps) else "lr_warmup")

    def _attention(self) -> None:
        value = self._take("xformers")
        if isinstance(value, bool):  # a checkbox before 2023-03
            value = "xformers" if value else "none"
        if value == "xformers" and not xformers_installed():
            # The run must work here: SDPA is the same memory-efficient attention, built into torch.
            self._set("sdpa", True, "xformers")
            self.warnings.append(msg(
                "gui.kohya.xformers_as_sdpa",
                'xformers = "xformers" -> sdpa: the xformers package is not installed here, so attention runs '
                "through PyTorch's scaled_dot_product_attention (SDPA), the same memory-efficient attention",
            ))  # fmt: skip
        elif value in ("xformers", "sdpa"):
            self._set(value, True, "xformers")
        elif not _is_unset("xformers", value):
            self._report("xformers", value, "invalid", msg("gui.kohya.xformers_choices", 'expected "xformers", "sdpa" or "none"'))

    def _noise(self) -> None:
        """kohya_ss passes one noise family, picked by noise_offset_type ("Original" before it existed)."""
        kind = self._take("noise_offset_type") or "Original"
        families = {
            "Original": ("noise_offset", "adaptive_noise_scale", "noise_offset_random_strength"),
            "Multires": ("multires_noise_iterations", "multires_noise_discount"),
        }
        for family, keys in families.items():
            for key in keys:
                if family == kind:
                    self._set(key, self._take(key), key)
                else:
                    detail = msg("gui.kohya.noise_type", 'noise_offset_type is "{kind}"', kind=kind)
                    self._report_if_set(key, self.data.get(key), "not_used", detail, KOHYA_DEFAULTS.get(key))

    def _checkbox_settings(self) -> None:
        for checkbox, (renamed, ignored) in CHECKBOX_RENAMED.items():
            for key, name in renamed.items():
                if checkbox == self.checkbox:
                    self._set(name, self._take(key), key)
                else:
                    self._report_if_set(key, self.data.get(key), "not_used", ignored())

    def _launch(self) -> None:
        for key in LAUNCH_KEYS:
            value = plain(self._take(key))
            if _is_unset(key, value):
                continue
            kind = ACCELERATE_FLAGS[key]
            if kind == "bool":
                value = _checked(value)
            elif kind == "int" and isinstance(value, float) and value.is_integer():
                value = int(value)
            elif kind == "str":
                value = str(value)
            if value is not False:
                self.launch[key] = value
        self._set("mixed_precision", self.data.get("mixed_precision"), "mixed_precision")  # the trainer's too
        for key in LAUNCH_EXTRA_KEYS:
            detail = msg("gui.kohya.launch_setting", "accelerate launch setting")
            self._report_if_set(key, self.data.get(key), "launch", detail, KOHYA_DEFAULTS.get(key))

    def _samples(self) -> None:
        text = self._take("sample_prompts")
        if _is_unset("sample_prompts", text):
            return
        sampling = any(
            not is_empty(self.data.get(k)) for k in ("sample_every_n_steps", "sample_every_n_epochs")
        )
        if sampling:
            self.prompts = str(text)
            self.warnings.append(msg(
                "gui.kohya.prompt_file",
                "sample_prompts: kohya_ss saves the prompts as text; they go to a prompt file (beside the "
                "run's TOML) that sample_prompts names",
            ))  # fmt: skip
        else:
            detail = msg("gui.kohya.nothing_sampled", "no sample_every_n_steps/epochs, so nothing is sampled")
            self._report("sample_prompts", text, "not_used", detail)

    def _no_option(self) -> None:
        for key in SILENT:
            self._take(key)
        for key in SECRETS:
            if not _is_unset(key, self._take(key)):
                detail = msg("gui.kohya.secret", "never carried over; enter it again where it is needed")
                self._report(key, HIDDEN, "secret", detail)
        for key, (reason, why) in NO_OPTION.items():
            self._report_if_set(key, self.data.get(key), reason, why())
        for key, section in SECTION_OF.items():
            default = OTHER_MODELS[section][key]
            detail = msg("gui.kohya.other_model_setting", "a {section} setting", section=section)
            self._report_if_set(key, self.data.get(key), "other_model", detail, default)

    def _same_name(self) -> None:
        """Every key left: ours by name (or renamed), else reported with the reason."""
        for key in list(self.todo):
            name = RENAMED.get(key, key)
            if name in self.schema:
                self._set(name, self._take(key), key)
            else:
                reason, detail = self._classify(key)
                self._report_if_set(key, self.data[key], reason, detail)

    def _classify(self, name: str) -> tuple[str, str]:
        if name in all_options():
            return "other_command", unknown_name_message(name, self.command)
        if name in sd_scripts_flags(self.command):
            return "not_implemented", msg("gui.kohya.not_implemented", "an sd-scripts option this trainer does not implement")
        return "unknown", msg("gui.kohya.unknown_key", "not a kohya_ss v26 LoRA setting")

    def _extra_parameters(self) -> None:
        """additional_parameters went on the trainer's command line after --config_file, so they win."""
        text = self.extra
        if _is_unset("additional_parameters", text):
            return
        try:
            flags = list(split_flags(str(text), names_for(self.command).get))
        except ValueError as error:
            detail = msg("gui.kohya.unreadable_flags", "cannot be read as trainer flags: {error}", error=str(error))
            self._report("additional_parameters", text, "invalid", detail)
            return
        for flag in flags:
            key, option = f"--{flag.name}", flag.option
            shown = " ".join(flag.values) if flag.values else True
            if flag.name in SECRETS or (option is not None and option.secret):
                self._report(key, HIDDEN, "secret", msg("gui.kohya.secret_flag", "never carried over"))
                continue
            if option is None:
                reason = self._classify(flag.name)[0]
                self._report(key, shown, reason, unknown_name_message(flag.name, self.command, "--"))
                continue
            if option.cli_only:
                detail = msg("gui.kohya.cli_only", "works only on the trainer's command line; add it there")
                self._report(key, shown, "not_used", detail)
                continue
            try:
                value = flag_value(flag)
            except ValueError as error:
                self._report(key, shown, "invalid", str(error))
                continue
            if option.name in self.options and self.options[option.name] != value:
                self.warnings.append(msg(
                    "gui.kohya.flag_replaces",
                    "additional_parameters {flag} replaces {name} = {value} (the command line wins, as in kohya_ss)",
                    flag=key, name=option.name, value=show(self.options[option.name]),
                ))  # fmt: skip
            self._set(option.name, value, key, explicit=True)

    def _check_text_cache(self) -> None:
        if self.options.get("cache_text_encoder_outputs") and not self.options.get("network_train_unet_only"):
            self.warnings.append(msg(
                "gui.kohya.text_cache_needs_unet_only",
                "cache_text_encoder_outputs needs a U-Net-only LoRA (text_encoder_lr 0 in kohya_ss); sd-scripts "
                "refuses this combination, and so does this trainer",
            ))  # fmt: skip


def _checked(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _is_unset(key: str, value: Any) -> bool:
    return is_empty(value) or (key in EMPTY_SPELLINGS and value == EMPTY_SPELLINGS[key])


def _chosen_empty(option: Option, key: str, value: Any) -> bool:
    """A 0 typed into a number field (or an emptied text field) that kohya_ss then left out, so the
    default took over. Not for a kohya_ss form default such as vae_batch_size 0, nor for the empty
    number boxes of old versions."""
    if _is_unset(option.name, option.default):
        return False
    value = plain(value)
    typed_zero = isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0
    emptied = option.kind in ("str", "path") and value == ""
    return (typed_zero or emptied) and value != KOHYA_DEFAULTS.get(key)


def _default(option: Option) -> Any:
    return list(option.default) if isinstance(option.default, tuple) else option.default
