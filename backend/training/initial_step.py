"""sd-scripts' --initial_step / --initial_epoch / --skip_until_initial_step: a run that counts from a later step.

sd-scripts' train_network: --initial_step N (all epochs together; it wins over --initial_epoch E, which means
N = (E - 1) x the optimizer steps of an epoch) starts the run in the epoch holding step N, and the run trains
until --max_train_steps, which must be above N. With --skip_until_initial_step the data of the steps before N in
that epoch is gone through without training (the batches an uninterrupted run would have trained there);
without it the epoch starts at its first batch. The learning-rate schedule is not advanced (its help says so):
it starts at its beginning, or where a --resume state left it. With --resume the state's step is ignored (a
warning says so); its network, optimizer, scheduler and random states are loaded as always.

Here the step counter starts at N in both cases, so save names, samples, metadata and progress go on from N.
(sd-scripts leaves its counter at 0 without --skip_until_initial_step, and sets it to the batches skipped
inside the epoch with it; both read as slips, not as intended behaviour.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from backend.messages import msg
from backend.training.option_slice import OptionSlice
from backend.training.run_length import steps_per_epoch


@dataclass(frozen=True)
class InitialStepConfig(OptionSlice):
    # The network commands' options (sd-scripts' train_network); absent on the fine-tune commands.
    initial_step: int | None = None
    initial_epoch: int | None = None
    skip_until_initial_step: bool = False

    @property
    def given(self) -> bool:
        return self.initial_step is not None or self.initial_epoch is not None


class StartPosition(NamedTuple):
    global_step: int  # optimizer steps counted as done
    epoch: int  # the epoch the run starts in, from 1
    skip_batches: int  # global batches of that epoch gone through without training


def initial_step(config: InitialStepConfig, batches_in_epoch: int, accumulation: int) -> int:
    """The step the run counts from (0 when neither option is given)."""
    if config.initial_step is not None:
        return config.initial_step
    if config.initial_epoch is not None:
        return (config.initial_epoch - 1) * steps_per_epoch(batches_in_epoch, accumulation)
    return 0


def start_position(config: InitialStepConfig, batches_in_epoch: int, accumulation: int) -> StartPosition:
    """Where a run with --initial_step/--initial_epoch starts; `batches_in_epoch` counts global batches."""
    step = initial_step(config, batches_in_epoch, accumulation)
    per_epoch = max(1, steps_per_epoch(batches_in_epoch, accumulation))
    epoch_index = step // per_epoch
    skip = (step - epoch_index * per_epoch) * accumulation if config.skip_until_initial_step else 0
    return StartPosition(step, epoch_index + 1, min(skip, batches_in_epoch))


def initial_step_problems(config: InitialStepConfig, batches_in_epoch: int, accumulation: int, total_steps: int,
                          resume: str | None) -> tuple[list[str], list[str]]:
    """(errors, warnings) for preflight: sd-scripts' assertion that the run's steps exceed the initial step, and
    what the options leave out."""
    errors: list[str] = []
    warnings: list[str] = []
    if not config.given:
        if config.skip_until_initial_step:
            warnings.append(msg("preflight.initial_step.skip_alone", "--skip_until_initial_step does nothing without "
                                "--initial_step or --initial_epoch"))
        return errors, warnings
    step = initial_step(config, batches_in_epoch, accumulation)
    if step > 0 and total_steps <= step:
        errors.append(msg(
            "preflight.initial_step.beyond_end", "the run starts at step {step} (--initial_step/--initial_epoch) but "
            "has {total} steps in all (--max_train_steps/--max_train_epochs count from the first step): nothing would "
            "be trained. Give more steps or a smaller initial step", step=step, total=total_steps,
        ))
    if resume:
        warnings.append(msg("preflight.initial_step.resume", "--initial_step/--initial_epoch is given, so the step "
                            "saved in --resume {folder} is ignored (as in sd-scripts); the run counts from step {step}",
                            folder=resume, step=step))
    return errors, warnings
