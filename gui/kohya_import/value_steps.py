"""The value steps of a kohya_ss config conversion (learning rates, duration, warm-up, attention,
noise, checkbox settings, launch, samples, keys with no option, extra parameters), mixed into
`convert._Converter`, which holds the bookkeeping (`_take`, `_set`, `_report`)."""

from __future__ import annotations

from typing import Any

from backend.messages import msg
from backend.options.names import names_for, unknown_name_message
from backend.options.schema import Option, all_options, ignored_reason
from backend.options.sd_scripts_flags import sd_scripts_commands_for, sd_scripts_flags
from backend.options.values import show
from backend.training.attention import xformers_installed
from gui.kohya_import.tables import (
    CHECKBOX_RENAMED,
    EMPTY_SPELLINGS,
    KOHYA_DEFAULTS,
    LAUNCH_EXTRA_KEYS,
    LAUNCH_KEYS,
    NO_OPTION,
    OTHER_MODELS,
    RENAMED,
    SECRETS,
    SECTION_OF,
    SILENT,
)
from gui.kohya_import.values import flag_value, is_empty, plain, split_flags
from gui.training.command_builder import ACCELERATE_FLAGS

HIDDEN = "<hidden>"  # what a secret value is shown as


class ValueSteps:
    """Steps over the config's values; each takes the keys it handles."""

    def _learning_rates(self) -> None:
        """As kohya_ss: a 0 text encoder LR with a U-Net LR trains the U-Net only, and the reverse."""
        lr, te_lr, unet_lr = (
            plain(self._take(key)) for key in ("learning_rate", "text_encoder_lr", "unet_lr")
        )
        self._set("learning_rate", lr, "learning_rate", note_default=False)
        self._set("text_encoder_lr", te_lr, "text_encoder_lr", note_default=False)
        self._set("unet_lr", unet_lr, "unet_lr", note_default=False)
        # (commands that take them: a LECO config has no text encoder rate and always trains the U-Net alone)
        if is_empty(te_lr) and not is_empty(unet_lr) and "network_train_unet_only" in self.schema:
            self._set("network_train_unet_only", True, "text_encoder_lr")
        if is_empty(unet_lr) and not is_empty(te_lr) and "network_train_text_encoder_only" in self.schema:
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
                # (a Fine-tuning config with flip_aug: kohya_ss halved those steps, finetune_steps.py says so)
                flip_note = self._flip_note(epoch) if self.kind == "finetune" else None
                self.warnings.append(flip_note or msg(
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
        elif scheduler == "constant" and self.kind == "leco":
            dropped = msg(
                "gui.kohya.leco_warmup_constant",
                "the LR warmup is dropped: lr_scheduler constant takes none (kohya_ss's LECO tab passes it, and "
                "sd-scripts stops the run)",
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
            if key in self.todo:  # (a DreamBooth config's stop_text_encoder_training was taken: dreambooth_steps.py)
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
        option = all_options().get(name)
        # DDPM noise settings under flow matching; the LoRA flags LECO parses and never reads
        reason = ignored_reason(option, self.command) if option is not None else ""
        if reason:
            return "not_used", msg(
                "gui.kohya.ignored_by_command", "sd-scripts' {command} ignores it: {reason}",
                command=self.command, reason=str(reason),
            )  # fmt: skip
        if option is not None:
            return "other_command", unknown_name_message(name, self.command)
        if name in sd_scripts_flags(self.command):
            return "not_implemented", msg("gui.kohya.not_implemented", "an sd-scripts option this trainer does not implement")
        if sd_scripts_commands_for(name):  # an sd-scripts flag of other scripts (kohya_ss writes it for every model)
            return "other_command", unknown_name_message(name, self.command)
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
        if self.kind != "lora":
            return  # the fine-tune commands' preflight says it (--train_text_encoder with cached outputs)
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
