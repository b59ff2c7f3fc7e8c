"""The FLUX.1 steps of a kohya_ss config conversion, mixed into `convert._Converter` (which holds the
bookkeeping: `_take`, `_set`, `_report`, `_report_if_set`).

With flux1_checkbox on, kohya_ss (v25+, `lora_gui.py: train_model`) passes its FLUX.1 section by name
(ae, clip_l, t5xxl, guidance_scale, timestep_sampling, ...: our options too, so they keep their names),
folds the network fields into network_args (network.py), joins t5xxl_lr to text_encoder_lr, and passes
keys this trainer has no option for; those are reported here with the reason. With it off, kohya_ss
ignores the whole section, and so does the import (a value that is not the form's default is reported).
"""

from __future__ import annotations

from typing import Any

from backend.messages import msg
from backend.options.values import show
from gui.kohya_import.tables import FLUX_NO_OPTION, FLUX_ONLY
from gui.kohya_import.values import is_empty, plain

FLUX_CHECKBOX = "flux1_checkbox"  # kohya_ss's key


class FluxSteps:
    """The FLUX.1 section of the config: used with flux1_checkbox on, reported as unused otherwise."""

    def _flux(self) -> None:
        if self.checkbox != FLUX_CHECKBOX:
            detail = msg("gui.kohya.flux_only", "FLUX.1 only; kohya_ss ignores it here")
            for key, default in FLUX_ONLY.items():
                if key in self.todo:  # not taken by the SD 3.5 steps (blocks_to_swap, t5xxl_lr, ...)
                    self._report_if_set(key, self.data.get(key), "not_used", detail, default)
            return
        self._t5xxl_lr()
        self._ggpo()
        shown = self.data.get("show_timesteps")
        for key, (reason, why) in FLUX_NO_OPTION.items():
            self._report_if_set(key, self.data.get(key), reason, why(), FLUX_ONLY.get(key))
        resolution = self._take("show_timesteps_resolution")  # kohya_ss passes it with show_timesteps only
        if not is_empty(shown):
            self._report("show_timesteps_resolution", resolution, "not_implemented", FLUX_NO_OPTION["show_timesteps"][1]())
        if "train_blocks" in self.todo:  # not taken by the network: no split_mode
            detail = msg(
                "gui.kohya.flux_train_blocks",
                "kohya_ss passes train_blocks only with split_mode (as train_blocks=single); sd-scripts trained all "
                "blocks, and so does this import. Add train_blocks={value} to network_args to train only those",
                value=self.data.get("train_blocks"),
            )  # fmt: skip
            self._report_if_set("train_blocks", self.data.get("train_blocks"), "not_used", detail, FLUX_ONLY["train_blocks"])

    def _t5xxl_lr(self) -> None:
        """kohya_ss: text_encoder_lr [CLIP-L, T5-XXL] when both are set; a T5-XXL LR alone stops it."""
        t5_lr, te_lr = plain(self._take("t5xxl_lr")), plain(self.data.get("text_encoder_lr"))
        if is_empty(t5_lr):
            return
        if is_empty(te_lr):
            self._report("t5xxl_lr", t5_lr, "invalid", msg(
                "gui.kohya.flux_t5xxl_lr_alone",
                "a T5-XXL learning rate needs a text encoder learning rate (kohya_ss refuses to start without one); "
                "left out",
            ))  # fmt: skip
            return
        self._set("text_encoder_lr", [te_lr, t5_lr], "t5xxl_lr")
        self.warnings.append(msg(
            "gui.kohya.flux_t5xxl_lr",
            "text_encoder_lr {te_lr} and t5xxl_lr {t5_lr} -> text_encoder_lr = {value} (CLIP-L, T5-XXL), as kohya_ss "
            "passes them",
            te_lr=show(te_lr), t5_lr=show(t5_lr), value=show(self.options.get("text_encoder_lr")),
        ))  # fmt: skip

    def _ggpo(self) -> None:
        on, sigma, beta = (self._take(key) for key in ("train_lora_ggpo", "ggpo_sigma", "ggpo_beta"))
        if on is True or str(on).strip().lower() == "true":
            self._report("train_lora_ggpo", True, "not_implemented", msg(
                "gui.kohya.flux_ggpo",
                "GGPO (network_args ggpo_sigma={sigma} ggpo_beta={beta}) is not part of this trainer's networks.lora; "
                "the LoRA trains without it",
                sigma=_text(sigma), beta=_text(beta),
            ))  # fmt: skip


def _text(value: Any) -> str:
    return show(plain(value))
