"""Issue 19's count: every flag of sd-scripts' SD training scripts is taken by the command of the same name here:
implemented, accepted with a warning where sd-scripts does nothing with it either, or refused with the reason it
cannot mean anything here. A flag that stops being taken fails this test."""

from __future__ import annotations

import pytest

from backend.options.refused import REFUSED_FLAGS
from backend.options.schema import LECO_COMMANDS, accepted_options, all_options
from backend.options.sd_scripts_flags import sd_scripts_flags

# sd-scripts' SD training scripts: each flag of each is taken by our command of the same name.
COMMANDS = ("train_network", "sdxl_train_network", "fine_tune", "sdxl_train", "train_db", "train_textual_inversion",
            "sdxl_train_textual_inversion", "train_leco", "sdxl_train_leco")


def taken(command: str) -> set[str]:
    """Implemented, accepted and said to do nothing (as in sd-scripts), or refused with the reason why the flag
    means nothing for this command (`Option.other_commands_reason`: --v2 on SDXL) or here at all
    (`refused.REFUSED_FLAGS`: --dataset_class)."""
    options = all_options().values()
    names = {o.name for o in options if command in o.commands or command in o.ignored_on or o.other_commands_reason}
    names |= set(accepted_options(command))  # the LECO commands: their LoRA command's options they share
    return names | REFUSED_FLAGS | {alias for o in options if command in o.commands for alias in o.aliases}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_sd_scripts_flag_is_taken(command: str) -> None:
    flags = sd_scripts_flags(command)
    assert len(flags) > (120 if command in LECO_COMMANDS else 160)  # sd-scripts' tables of the script are there
    assert flags - taken(command) == set()
