"""Issue 19's count: every flag of sd-scripts' SD training scripts is taken by the command of the same name here
(implemented, or accepted with a warning where it cannot mean anything) or listed below as not yet done. The lists
only shrink: implementing a flag means removing it here; a flag that stops being taken fails this test.
The textual inversion scripts (train_textual_inversion, sdxl_train_textual_inversion) have no command yet."""

from __future__ import annotations

import pytest

from backend.options.schema import all_options
from backend.options.sd_scripts_flags import sd_scripts_flags

# Not taken by every SD command yet (as of issue 19's first session).
_EVERY = {
    "cache_info", "dataset_class", "debug_dataset", "face_crop_aug_range", "highvram", "token_warmup_min",
    "token_warmup_step", "vae", "weighted_captions",
}
_NETWORK = {"base_weights", "base_weights_multiplier", "initial_epoch", "initial_step", "skip_until_initial_step",
            "fused_backward_pass", "masked_loss", "conditioning_data_dir"}
_SDXL = {"disable_mmap_load_safetensors"}
NOT_YET = {
    "train_network": _EVERY | _NETWORK,
    "sdxl_train_network": _EVERY | _NETWORK | _SDXL,
    "fine_tune": _EVERY | {"fp8_base"},
    "sdxl_train": _EVERY | _SDXL | {"fp8_base", "masked_loss", "conditioning_data_dir"},
    "train_db": _EVERY | {"fp8_base", "masked_loss", "conditioning_data_dir"},
}


def taken(command: str) -> set[str]:
    """Implemented, accepted and said to do nothing (as in sd-scripts), or refused with the reason why the flag
    means nothing for this command (`Option.other_commands_reason`: --v2 on SDXL)."""
    options = all_options().values()
    names = {o.name for o in options if command in o.commands or command in o.ignored_on or o.other_commands_reason}
    return names | {alias for o in options if command in o.commands for alias in o.aliases}


@pytest.mark.parametrize("command", list(NOT_YET))
def test_every_sd_scripts_flag_is_taken_or_listed_as_not_yet(command: str) -> None:
    flags = sd_scripts_flags(command)
    assert NOT_YET[command] <= flags, "only sd-scripts flags of the script are listed"
    assert flags - taken(command) == NOT_YET[command]
