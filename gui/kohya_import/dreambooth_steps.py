"""The DreamBooth steps of a kohya_ss config conversion, mixed into `convert._Converter` (which holds the
bookkeeping: `_take`, `_set`, `_report`, `_report_if_set`).

kohya_ss's DreamBooth tab (`dreambooth_gui.py: train_model`) starts train_db.py for SD 1.x/2.x, sdxl_train.py,
sd3_train.py or flux_train.py, and writes the text encoders' settings by model: learning_rate_te and
stop_text_encoder_training for train_db; for SDXL learning_rate_te1/te2 and train_text_encoder = either rate
above 0. Its "Stop TE (% of total steps)" field is passed to train_db unchanged, as a step number; the import
keeps what ran and says so. The other keys are the LoRA tab's (value_steps.py), without a network.
"""

from __future__ import annotations

from typing import Any

from backend.messages import msg
from gui.kohya_import.values import plain

STOP_TE = "stop_text_encoder_training"
KOHYA_TE_RATE = 1e-05  # the DreamBooth tab's text encoder learning rates start here


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


class DreamBoothSteps:
    """The text encoder's settings of a DreamBooth config, by the command it trains with."""

    def _dreambooth(self) -> None:
        stop = plain(self._take(STOP_TE))
        if STOP_TE in self.schema:  # train_db
            self._set(STOP_TE, stop, STOP_TE)
            if STOP_TE in self.options:
                self.warnings.append(msg(
                    "gui.kohya.stop_te_steps",
                    'stop_text_encoder_training = {value}: kohya_ss labels it "% of total steps" but passes the '
                    "number to train_db as a step; imported as step {value}, as kohya_ss ran it",
                    value=self.options[STOP_TE],
                ))  # fmt: skip
        else:
            detail = msg("gui.kohya.not_passed_for", "kohya_ss does not pass it to {command}", command=self.command)
            self._report_if_set(STOP_TE, stop, "not_used", detail, 0)
        two_encoders = "learning_rate_te1" in self.schema  # sdxl_train
        for key, used in (("learning_rate_te", not two_encoders), ("learning_rate_te1", two_encoders),
                          ("learning_rate_te2", two_encoders)):
            if not used:
                detail = msg("gui.kohya.not_passed_for", "kohya_ss does not pass it to {command}", command=self.command)
                self._report_if_set(key, plain(self.data.get(key)), "not_used", detail, KOHYA_TE_RATE)
        if two_encoders and "train_text_encoder" in self.schema and "train_text_encoder" not in self.data:
            rates = [plain(self.data.get(key)) for key in ("learning_rate_te1", "learning_rate_te2")]
            if any(_positive(rate) for rate in rates):
                self._set("train_text_encoder", True, "learning_rate_te1")
                self.warnings.append(msg(
                    "gui.kohya.sdxl_te_trained", "learning_rate_te1/te2 above 0 -> train_text_encoder (kohya_ss's "
                    "DreamBooth tab trains SDXL's text encoders then)",
                ))  # fmt: skip
