"""sd-scripts' --initial_step / --initial_epoch / --skip_until_initial_step: where the run starts (initial_step.py)."""

from __future__ import annotations

from backend.training.initial_step import InitialStepConfig, initial_step_problems, start_position


def test_the_start_position_follows_sd_scripts_arithmetic():
    # 10 global batches per epoch, accumulation 2: 5 optimizer steps per epoch.
    def start(**given):
        return start_position(InitialStepConfig(**given), 10, 2)

    assert start() == start(initial_step=0) == (0, 1, 0)
    assert start(initial_step=7) == (7, 2, 0)  # epoch 2 from its first batch: data is not skipped
    assert start(initial_step=7, skip_until_initial_step=True) == (7, 2, 4)  # 2 steps x 2 batches gone through
    assert start(initial_epoch=3) == start(initial_step=10) == (10, 3, 0)
    assert start(initial_epoch=3, initial_step=1) == (1, 1, 0)  # --initial_step wins
    assert start_position(InitialStepConfig(initial_step=4, skip_until_initial_step=True), 9, 2) == (4, 1, 8)


def test_preflight_refuses_a_start_at_or_past_the_end_and_names_what_is_ignored():
    errors, warnings = initial_step_problems(InitialStepConfig(initial_epoch=3), 10, 1, 20, None)
    assert errors == ["the run starts at step 20 (--initial_step/--initial_epoch) but has 20 steps in all "
                      "(--max_train_steps/--max_train_epochs count from the first step): nothing would be trained. "
                      "Give more steps or a smaller initial step"] and warnings == []
    errors, warnings = initial_step_problems(InitialStepConfig(initial_step=5), 10, 1, 20, "out/tiny-state")
    assert errors == [] and warnings == ["--initial_step/--initial_epoch is given, so the step saved in --resume "
                                         "out/tiny-state is ignored (as in sd-scripts); the run counts from step 5"]
    assert initial_step_problems(InitialStepConfig(skip_until_initial_step=True), 10, 1, 20, None)[1] == [
        "--skip_until_initial_step does nothing without --initial_step or --initial_epoch"]
