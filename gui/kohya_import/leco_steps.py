"""The LECO steps of a kohya_ss config conversion, mixed into `convert._Converter` (which holds the bookkeeping:
`_take`, `_set`, `_report`, `_report_if_set`).

kohya_ss's LECO tab (`leco_gui.py: train_model`, v26) starts sd-scripts' train_leco.py, or sdxl_train_leco.py with
its SDXL checkbox on, with no dataset: prompts_file, max_denoising_steps and leco_denoise_guidance_scale keep their
names, as do its free-text network fields (network_module as typed, network_args split on spaces with quotes
removed, as `coerce` splits every list option). What differs from the LoRA tab's keys (value_steps.py):
- v2, v_parameterization and clip_skip are passed only without SDXL; with it they are reported as not passed;
- the tab has no text encoder rate, so unet_lr alone does not mean "U-Net only" (LECO always trains the U-Net
  alone; `_learning_rates` leaves network_train_unet_only to commands that take it);
- lr_warmup_steps is passed as typed, also with the constant scheduler, where sd-scripts stops the run
  (`value_steps._warmup` drops it and says so);
- the network type the GUI's selector shows is read from network_module and network_args
  (`gui.training.network_types.decompose`), as a preset's would be.
The accelerate launch keys and the rest are the LoRA tab's (value_steps.py).
"""

from __future__ import annotations

from backend.messages import msg
from gui.kohya_import.tables import SDXL_CHECKBOX
from gui.kohya_import.values import is_empty, plain
from gui.training.network_types import decompose

# kohya_ss passes these only with the SDXL checkbox off (`v2 if not sdxl else None`, ...).
NOT_FOR_SDXL = ("v2", "v_parameterization", "clip_skip")


class LecoSteps:
    """The keys only kohya_ss's LECO tab saves, and those it passes by model."""

    def _leco(self) -> str:
        """The LECO keys that need a rule; returns the network type the GUI's selector shows."""
        if self.checkbox == SDXL_CHECKBOX:
            detail = msg("gui.kohya.not_passed_for", "kohya_ss does not pass it to {command}", command=self.command)
            for key in NOT_FOR_SDXL:
                self._report_if_set(key, plain(self.data.get(key)), "not_used", detail)
        if is_empty(self.data.get("prompts_file")):
            self.warnings.append(msg(
                "gui.kohya.leco_no_prompts_file",
                "prompts_file is empty (kohya_ss refuses to start without one): set it to the LECO prompt file "
                "(TOML) before training",
            ))  # fmt: skip
        module = str(self.data.get("network_module") or "").strip() or "networks.lora"
        args = str(self.data.get("network_args") or "").replace('"', "").split()
        return decompose(module, args).network_type
