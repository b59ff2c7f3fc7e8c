"""The declared options match what backend/training implements."""

from __future__ import annotations

from backend.objectives.loss import HUBER_SCHEDULES, LOSS_TYPES, LossConfig
from backend.objectives.noise import NoiseConfig
from backend.options.defs import training as defs
from backend.options.defs import training_noise as noise_defs
from backend.options.schema import all_options
from backend.training.sample_prompts import SAMPLER_NAMES
from backend.training.schedulers import SCHEDULER_NAMES


def test_choices_match_the_implementation() -> None:
    options = all_options()
    assert options["lr_scheduler"].choices == SCHEDULER_NAMES == defs.SCHEDULERS
    assert options["sample_sampler"].choices == SAMPLER_NAMES == noise_defs.SAMPLERS
    assert set(options["loss_type"].choices) == set(LOSS_TYPES)
    assert set(options["huber_schedule"].choices) == set(HUBER_SCHEDULES)


def test_config_fields_are_declared_with_matching_defaults() -> None:
    options = all_options()
    # v_parameterization is a model option declared elsewhere
    for config in (NoiseConfig(), LossConfig()):
        for name, field in type(config).__dataclass_fields__.items():
            assert name in options, name
            if name != "v_parameterization":
                assert options[name].default == field.default, name


def test_sd_scripts_defaults() -> None:
    options = all_options()
    expected = {
        "learning_rate": 2e-6, "max_grad_norm": 1.0, "lr_scheduler": "constant", "lr_warmup_steps": 0,
        "lr_scheduler_num_cycles": 1, "lr_scheduler_power": 1.0, "multires_noise_discount": 0.3,
        "loss_type": "l2", "huber_schedule": "snr", "huber_c": 0.1, "huber_scale": 1.0, "sample_sampler": "ddim",
    }  # fmt: skip
    assert {name: options[name].default for name in expected} == expected
