"""Validation loss (--validation_split): when it runs, what it reports, and that it is reproducible."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml
from safetensors import safe_open

from backend.objectives.ddpm import DDPMObjective
from backend.objectives.loss import LossConfig
from backend.objectives.noise import NoiseConfig, create_noise_scheduler
from backend.options import parse_command_line
from backend.training.preflight import build_plan
from backend.training.validation import Validation, validation_timesteps

from .helpers import base_flags, run_trainer

# train_dir holds 3 images with 2 repeats: 0.34 holds out round(3 x 0.34) = 1 image, leaving 2 x 2 = 4
# batches per epoch, so 4 steps are exactly one epoch.
SPLIT = ("--validation_split", "0.34", "--network_dim", "4", "--learning_rate", "1e-2")


# The tracker options ride along on this logged run (tests/training/test_trackers.py has their unit tests).
WANDB_KEY = "wandb-SECRET-0123456789"


@pytest.fixture(scope="module")
def validated_run(tiny, train_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("validation-out")
    trackers = tmp_path_factory.mktemp("trackers") / "trackers.toml"
    trackers.write_text('[tensorboard]\nfilename_suffix = ".kohya"\n')
    flags = base_flags(tiny.get("sd15").path, train_dir, out, *SPLIT, "--max_train_steps", "4",
                       "--validate_every_n_steps", "2", "--logging_dir", str(out / "logs"), "--log_config",
                       "--log_tracker_config", str(trackers), "--wandb_api_key", WANDB_KEY)
    result = run_trainer("train_network", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_validation_lines_at_the_right_steps(validated_run):
    _, result = validated_run
    lines = result.of("validation")
    # Steps 2 and 4; the end of epoch 1 falls on step 4, whose pass is not repeated.
    assert [(e["step"], e["epoch"]) for e in lines] == [(2, 1), (4, 1)]
    assert all(isinstance(e["loss"], float) and math.isfinite(e["loss"]) for e in lines)
    order = [(e["event"], e.get("step")) for e in result.events if e["event"] in ("step", "validation")]
    assert order.index(("validation", 2)) == order.index(("step", 2)) + 1


def test_validation_scalars_as_sd_scripts_names_them(validated_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, result = validated_run
    (events,) = list((out / "logs").glob("*/train_network/events.out.tfevents.*"))
    accumulator = EventAccumulator(str(events.parent))
    accumulator.Reload()
    losses = {e["step"]: e["loss"] for e in result.of("validation")}
    steps = accumulator.Scalars("loss/validation/step_average")
    assert [(s.step, pytest.approx(s.value)) for s in steps] == [(2, losses[2]), (4, losses[4])]
    assert "loss/validation/step_divergence" in accumulator.Tags()["scalars"]
    (epoch,) = accumulator.Scalars("loss/validation/epoch_average")  # plotted against the epoch
    assert (epoch.step, epoch.value) == (1, pytest.approx(losses[4]))


def test_log_config_and_tracker_config_reach_tensorboard(validated_run):
    out, _ = validated_run
    (events,) = list((out / "logs").glob("*/train_network/events.out.tfevents.*"))
    assert events.name.endswith(".kohya")  # --log_tracker_config's [tensorboard] went to its SummaryWriter
    (hparams,) = list((out / "logs").glob("*/train_network/*/hparams.yml"))
    logged = yaml.safe_load(hparams.read_text())
    assert logged["validation_split"] == 0.34 and logged["log_config"] is True
    assert "output_dir" not in logged and "wandb_api_key" not in logged
    (hparam_events,) = list((out / "logs").glob("*/train_network/*/events.out.tfevents.*"))
    assert b"validate_every_n_steps" in hparam_events.read_bytes()  # the hyperparameters in the event file
    assert not [path for path in out.rglob("*") if path.is_file() and WANDB_KEY.encode() in path.read_bytes()]


def test_metadata_counts_validation_images(validated_run):
    out, _ = validated_run
    with safe_open(str(out / "tiny.safetensors"), "pt") as file:
        metadata = file.metadata()
    assert metadata["ss_num_validation_images"] == "1"
    assert metadata["ss_num_train_images"] == "4"  # the held-out image's repeats are not trained
    assert metadata["ss_validation_split"] == "0.34"
    assert metadata["ss_validate_every_n_steps"] == "2"
    assert metadata["ss_validation_seed"] == "None"


def test_same_seed_same_validation_loss(validated_run, tiny, train_dir, tmp_path):
    """A second run of the same first two steps reaches exactly the same validation loss."""
    _, first = validated_run
    flags = base_flags(tiny.get("sd15").path, train_dir, tmp_path, *SPLIT, "--max_train_steps", "2",
                       "--validate_every_n_steps", "2")
    again = run_trainer("train_network", *flags)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [e["loss"] for e in again.of("validation")] == [first.of("validation")[0]["loss"]]


def plan_for(tiny, train_dir, tmp_path, *extra: str):
    args = parse_command_line("train_network", base_flags(tiny.get("sd15").path, train_dir, tmp_path, *extra))
    return build_plan(args, "train_network")


def test_preflight_rejects_bad_splits(tiny, train_dir, tmp_path):
    plan = plan_for(tiny, train_dir, tmp_path, "--validation_split", "1")
    assert any("validation_split must be at least 0 and less than 1" in e for e in plan.errors), plan.errors
    plan = plan_for(tiny, train_dir, tmp_path, "--validation_split", "0.1")
    assert any("validation_split 0.1 holds out no image" in e for e in plan.errors), plan.errors
    plan = plan_for(tiny, train_dir, tmp_path, "--validation_split", "0.9")
    assert any("holds out all 3 training images" in e for e in plan.errors), plan.errors
    plan = plan_for(tiny, train_dir, tmp_path, "--validation_split", "0.34")
    assert plan.ok, plan.errors
    assert plan.report["dataset"]["num_batches_per_epoch"] == 4
    plan = plan_for(tiny, train_dir, tmp_path, "--validate_every_n_steps", "2")
    assert plan.ok and any("no effect without validation_split" in w for w in plan.warnings)


def test_validation_timesteps_like_sd_scripts():
    assert validation_timesteps(0, 1000) == [200, 400, 600, 800]
    assert validation_timesteps(100, 600) == [200, 300, 400, 500]


@dataclass
class FakeRun:
    """What Validation.loss reads of a TrainingRun."""

    method: Any
    optimizer: Any
    accelerator: Any
    objective: DDPMObjective


def test_a_pass_pins_timesteps_and_noise_and_restores_modes():
    network = torch.nn.Linear(2, 2)
    seen: list[tuple] = []

    def batch_loss(run, batch, generator):
        config = run.objective.noise
        draw = torch.rand(1, generator=generator).item()
        seen.append((batch["id"], config.min_timestep, config.max_timestep, draw, network.training,
                     torch.is_grad_enabled(), config.noise_offset))
        return torch.tensor(float(config.min_timestep))

    optimizer = SimpleNamespace(modes=[], train=lambda: optimizer.modes.append("train"),
                                eval=lambda: optimizer.modes.append("eval"))
    run = FakeRun(SimpleNamespace(trained_module=network), optimizer, SimpleNamespace(device=torch.device("cpu")),
                  DDPMObjective(create_noise_scheduler(), NoiseConfig(noise_offset=0.05), LossConfig()))
    validation = Validation(group=None, seed=3, timesteps=[200, 800])  # type: ignore[arg-type]
    validation._batches = [{"id": 0}, {"id": 1}]

    assert validation.loss(run, batch_loss) == 500.0  # the mean over every (batch, timestep)
    first, seen[:] = list(seen), []
    validation.loss(run, batch_loss)
    assert seen == first, "the same noise every pass"
    assert [(s[0], s[1], s[2]) for s in first] == [(0, 200, 200), (0, 800, 800), (1, 200, 200), (1, 800, 800)]
    assert len({s[3] for s in first}) == 4, "each (batch, timestep) has its own noise"
    assert not any(s[4] or s[5] for s in first), "eval mode, no gradients"
    assert all(s[6] == 0.05 for s in first), "the training noise options apply"
    assert network.training and optimizer.modes == ["eval", "train", "eval", "train"]


def test_due_follows_sd_scripts():
    validation = Validation(group=None, seed=0, timesteps=[500], every_n_steps=3)  # type: ignore[arg-type]
    assert [s for s in range(1, 10) if validation.due(step=s, epoch=1, epoch_end=False)] == [3, 6, 9]
    assert validation.due(step=5, epoch=1, epoch_end=True), "every epoch when validate_every_n_epochs is unset"
    validation.every_n_epochs, validation.every_n_steps = 2, None
    assert [e for e in range(1, 6) if validation.due(step=0, epoch=e, epoch_end=True)] == [2, 4]
    assert not validation.due(step=4, epoch=1, epoch_end=False)
