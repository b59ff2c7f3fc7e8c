"""The SD 3.5 steps of a kohya_ss config conversion, mixed into `convert._Converter` (which holds the
bookkeeping: `_take`, `_set`, `_report`, `_report_if_set`).

With sd3_checkbox on, kohya_ss (`lora_gui.py: train_model`) starts sd3_train_network.py and writes its SD3
section: sd3_clip_l, sd3_t5xxl, sd3_*_dropout_rate, sd3_cache_text_encoder_outputs... under sd-scripts'
names (SD3_RENAMED), clip_g, clip_g_dropout_rate, weighting_scheme, logit_mean, ... under their own (our
options too), and blocks_to_swap and show_timesteps from the FLUX.1 section. It writes no
t5xxl_max_token_length nor apply_t5_attn_mask for SD3 (sd-scripts' defaults apply), and joins t5xxl_lr to
text_encoder_lr as for FLUX.1, which sd-scripts' lora_sd3 then reads as CLIP-G's and T5-XXL's. With the
checkbox off, kohya_ss ignores the section, and so does the import (a value not the form's default is
reported). Medium or Large: the model file tells, else its name (model_choice.py).
"""

from __future__ import annotations

from backend.messages import msg
from gui.kohya_import.tables import FLUX_ONLY, SD3_NO_OPTION, SD3_ONLY, SD3_RENAMED
from gui.kohya_import.values import is_empty, plain

SD3_CHECKBOX = "sd3_checkbox"  # kohya_ss's key
# FLUX.1-section keys kohya_ss passes for SD3 too (lora_gui.py: "... if flux1_checkbox or sd3_checkbox ...").
SHARED_WITH_FLUX = ("blocks_to_swap",)
# SD3's text encoder keys in the DreamBooth and Finetuning tabs' saves (the LoRA tab's are sd3_clip_l, sd3_t5xxl).
TAB_SD3_ENCODERS = ("clip_l", "t5xxl")


class Sd3Steps:
    """The SD3 section of the config: used with sd3_checkbox on, reported as unused otherwise."""

    def _sd3(self) -> None:
        self._sd3_own_encoders()
        if self.checkbox != SD3_CHECKBOX:
            detail = msg("gui.kohya.sd3_only", "SD 3.5 only; kohya_ss ignores it here")
            for key, default in SD3_ONLY.items():
                self._report_if_set(key, self.data.get(key), "not_used", detail, default)
            return
        for key, (reason, why) in SD3_NO_OPTION.items():
            self._report_if_set(key, self._take(key), reason, why(), SD3_ONLY[key])
        for key in SD3_ONLY:
            if key in self.todo:
                self._set(SD3_RENAMED.get(key, key), self._take(key), key)
        for key in SHARED_WITH_FLUX:
            if key in self.todo:
                self._set(key, self._take(key), key)
        self._sd3_t5xxl_lr()
        shown, resolution = self._take("show_timesteps"), self._take("show_timesteps_resolution")
        if not is_empty(shown):
            detail = msg("gui.kohya.flux_show_timesteps", "sd-scripts' --show_timesteps (show the timestep distribution, "
                         "then stop) is not part of this trainer")
            self._report("show_timesteps", shown, "not_implemented", detail)
            self._report("show_timesteps_resolution", resolution, "not_implemented", detail)

    def _sd3_own_encoders(self) -> None:
        """The DreamBooth and Finetuning tabs save SD3's text encoders as clip_l and t5xxl (their FLUX.1 ones are
        flux1_clip_l and flux1_t5xxl) and pass them with sd3_checkbox on only."""
        if self.kind == "lora":
            return
        for key in TAB_SD3_ENCODERS:
            if self.checkbox == SD3_CHECKBOX:
                self._set(key, self._take(key), key)
            else:
                detail = msg("gui.kohya.sd3_only", "SD 3.5 only; kohya_ss ignores it here")
                self._report_if_set(key, self.data.get(key), "not_used", detail, "")

    def _sd3_t5xxl_lr(self) -> None:
        """kohya_ss joins t5xxl_lr to text_encoder_lr whatever the model; on SD 3.5 lora_sd3 reads the pair as
        [CLIP-L, CLIP-G and T5-XXL], not what the field says, so the import leaves it out and says so."""
        value = plain(self._take("t5xxl_lr"))
        self._report_if_set("t5xxl_lr", value, "not_used", msg(
            "gui.kohya.sd3_t5xxl_lr",
            "kohya_ss would pass text_encoder_lr [text_encoder_lr, t5xxl_lr], which sd-scripts' lora_sd3 reads as CLIP-L, "
            "then CLIP-G and T5-XXL; left out. For learning rates per encoder, give text_encoder_lr three values "
            "(CLIP-L, CLIP-G, T5-XXL)",
        ), FLUX_ONLY["t5xxl_lr"])  # fmt: skip
