"""Issue 19's count: every flag of sd-scripts' SD training scripts is taken by the command of the same name here
(implemented, or accepted with a warning where it cannot mean anything) or listed below as not yet done. The lists
only shrink: implementing a flag means removing it here; a flag that stops being taken fails this test."""

from __future__ import annotations

import pytest

from backend.options.refused import REFUSED_FLAGS
from backend.options.schema import all_options
from backend.options.sd_scripts_flags import sd_scripts_flags

# Not taken by every SD command yet (as of issue 19's first session).
_EVERY = {
    "log_config", "log_tracker_config", "wandb_api_key", "wandb_run_name",
    # DeepSpeed (accelerate's plug-in; docs/multi-gpu.md configures it through accelerate's own config today)
    "deepspeed", "zero_stage", "offload_optimizer_device", "offload_optimizer_nvme_path", "offload_param_device",
    "offload_param_nvme_path", "zero3_init_flag", "zero3_save_16bit_model", "fp16_master_weights_and_gradients",
}
NOT_YET = {
    "train_network": _EVERY,
    "sdxl_train_network": _EVERY,
    "fine_tune": _EVERY,
    "sdxl_train": _EVERY,
    "train_db": _EVERY,
    "train_textual_inversion": _EVERY,
    "sdxl_train_textual_inversion": _EVERY,
}


def taken(command: str) -> set[str]:
    """Implemented, accepted and said to do nothing (as in sd-scripts), or refused with the reason why the flag
    means nothing for this command (`Option.other_commands_reason`: --v2 on SDXL) or here at all
    (`refused.REFUSED_FLAGS`: --dataset_class)."""
    options = all_options().values()
    names = {o.name for o in options if command in o.commands or command in o.ignored_on or o.other_commands_reason}
    return names | REFUSED_FLAGS | {alias for o in options if command in o.commands for alias in o.aliases}


@pytest.mark.parametrize("command", list(NOT_YET))
def test_every_sd_scripts_flag_is_taken_or_listed_as_not_yet(command: str) -> None:
    flags = sd_scripts_flags(command)
    assert NOT_YET[command] <= flags, "only sd-scripts flags of the script are listed"
    assert flags - taken(command) == NOT_YET[command]
