"""Validation loss on the images `--validation_split` holds out (sd-scripts' train_network.py, 2025).

A pass runs every validation batch (at most `--max_validation_steps`) at sd-scripts' fixed timesteps,
4 evenly spaced inside [min_timestep, max_timestep] (200, 400, 600, 800 by default), through the
training loss (`step.batch_loss`: same noise options, loss type and weightings). What would be
random is fixed instead, so the number compares across passes, runs and resumes:

- the batches: always the group's epoch-1 batches (same order, captions and flips);
- the latents: one VAE sample per batch from a seeded generator, encoded on the first pass and kept;
- the noise: a generator per (batch, timestep) seeded from the validation seed.

Passes run on the main process only, under no_grad, with the network in eval mode (no dropout)
and schedule-free optimizers on their evaluation weights.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch

from backend.data.dataset import Batch, DatasetGroup
from backend.messages import msg
from backend.training.optimizers import set_optimizer_train_mode

if TYPE_CHECKING:
    from accelerate import Accelerator

    from backend.models.components import Components
    from backend.models.spec import ModelSpecification
    from backend.objectives.base import Objective
    from backend.training.method import TrainingMethod
    from backend.training.progress import ProgressReporter

logger = logging.getLogger(__name__)

NUM_VALIDATION_TIMESTEPS = 4  # sd-scripts' NUM_VALIDATION_TIMESTEPS
VALIDATION_EPOCH = 1  # the epoch whose batch plan and augmentations every pass uses
VAE_SAMPLE = -1  # generator key of the latent sample (timesteps are >= 0)

# (run, batch, generator) -> scalar loss: the training loss, `step.batch_loss`.
BatchLoss = Callable[[Any, Batch, torch.Generator], torch.Tensor]


class ValidatedRun(Protocol):
    """What a pass reads of the run (run_setup.TrainingRun is one): named here, so this module does not
    import run_setup, which builds the validation. A dataclass: each timestep gets a copy with its noise
    options pinned (`dataclasses.replace`)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    components: Components
    spec: ModelSpecification
    method: TrainingMethod
    optimizer: Any  # accelerate-wrapped
    accelerator: Accelerator
    reporter: ProgressReporter
    objective: Objective


@dataclass(frozen=True)
class ValidationConfig:
    """The validation options a run reads (`from_args` after the run's seed is drawn)."""

    seed: int  # --validation_seed, or the training seed when it is unset
    max_steps: int | None = None
    every_n_steps: int | None = None
    every_n_epochs: int | None = None

    @classmethod
    def from_args(cls, args: Any) -> ValidationConfig:
        return cls(
            seed=args.validation_seed if args.validation_seed is not None else args.seed,
            max_steps=args.max_validation_steps, every_n_steps=args.validate_every_n_steps,
            every_n_epochs=args.validate_every_n_epochs,
        )


def validation_timesteps(low: int, high: int, count: int = NUM_VALIDATION_TIMESTEPS) -> list[int]:
    """`count` evenly spaced timesteps strictly inside [low, high], as sd-scripts' linspace(...)[1:-1]."""
    return [low + (high - low) * i // (count + 1) for i in range(1, count + 1)]


@dataclass
class Validation:
    group: DatasetGroup
    seed: int
    timesteps: list[int]
    max_steps: int | None = None
    every_n_steps: int | None = None
    every_n_epochs: int | None = None
    last: tuple[int, float] | None = None  # (step, loss) of the latest pass
    _batches: list[Batch] = field(default_factory=list, repr=False)

    @property
    def num_images(self) -> int:
        return self.group.num_train_images

    @property
    def num_batches(self) -> int:
        return min(len(self.group), self.max_steps) if self.max_steps else len(self.group)

    def due(self, *, step: int, epoch: int, epoch_end: bool) -> bool:
        """After a step: every `every_n_steps`. At an epoch's end: every `every_n_epochs`, or every
        epoch when that is not set (sd-scripts validates each epoch by default)."""
        if epoch_end:
            return self.every_n_epochs is None or epoch % self.every_n_epochs == 0
        return bool(self.every_n_steps) and step % self.every_n_steps == 0

    def generator(self, device: torch.device, batch_index: int, key: int) -> torch.Generator:
        seed = hash((self.seed, batch_index, key)) & 0x7FFF_FFFF_FFFF_FFFF
        return torch.Generator(device=device).manual_seed(seed)

    def batches(self, run: ValidatedRun) -> list[Batch]:
        """The validation batches with latents, loaded and encoded on the first call (under no_grad)."""
        if self._batches:
            return self._batches
        for index in range(self.num_batches):
            batch = self.group[(VALIDATION_EPOCH, index)]
            if batch["latents"] is None:
                vae = run.components.vae  # may wait on the CPU when training latents are cached
                latents = run.spec.encode_images(vae, batch["images"], self.generator(vae.device, index, VAE_SAMPLE))
                batch = {**batch, "images": None, "latents": latents.cpu()}
            self._batches.append(batch)
        return self._batches

    def loss(self, run: ValidatedRun, batch_loss: BatchLoss) -> float:
        """Mean loss over every (batch, fixed timestep) pair; the network's mode is restored afterwards."""
        network = run.method.trained_module
        was_training = network.training
        network.eval()
        set_optimizer_train_mode(run.optimizer, False)
        try:
            # One view of the run per timestep: the training objective with the timestep pinned.
            pinned = [dataclasses.replace(run, objective=run.objective.at_timestep(t)) for t in self.timesteps]
            device = run.accelerator.device
            with torch.no_grad():
                losses = [
                    batch_loss(view, batch, self.generator(device, index, t)).float()
                    for index, batch in enumerate(self.batches(run))
                    for view, t in zip(pinned, self.timesteps, strict=True)
                ]
            return float(torch.stack(losses).mean().item())
        finally:
            network.train(was_training)
            set_optimizer_train_mode(run.optimizer, True)

    def validate(self, run: ValidatedRun, batch_loss: BatchLoss, *, step: int, epoch: int, epoch_end: bool,
                 train_loss: float) -> None:
        """One pass, reported as a progress `validation` line and sd-scripts' tracker scalars
        (`loss/validation/{step,epoch}_{average,divergence}`, divergence = validation - training
        average). At an epoch's end right after a step pass, that pass's loss is reused: same weights."""
        if self.last is not None and self.last[0] == step:
            loss = self.last[1]
        else:
            loss = self.loss(run, batch_loss)
            self.last = (step, loss)
            run.reporter.validation(step=step, epoch=epoch, loss=loss)
        if run.accelerator.trackers:
            kind = "epoch" if epoch_end else "step"
            logs = {f"loss/validation/{kind}_average": loss, f"loss/validation/{kind}_divergence": loss - train_loss}
            # Epoch scalars are plotted against the epoch, as sd-scripts does.
            run.accelerator.log(logs, step=epoch if epoch_end else step)


def build_validation(config: ValidationConfig, objective: Objective,
                     group: DatasetGroup) -> Validation | None:
    """The run's validation set from the training group's held-out images, at timesteps inside the
    training noise options' range; None without a split."""
    held_out = group.validation_group()
    if held_out is None:
        return None
    low, high = objective.timestep_range()
    logger.info(msg("run.validation_held_out", "{images} image(s) held out for the validation loss, {batches} "
                    "batch(es)", images=held_out.num_train_images, batches=len(held_out)))
    return Validation(
        group=held_out, seed=config.seed, timesteps=validation_timesteps(low, high), max_steps=config.max_steps,
        every_n_steps=config.every_n_steps, every_n_epochs=config.every_n_epochs,
    )
