"""The contract between a family's training objective and the loop.

Modelled on finetrainers' `ModelSpecification.forward` (returns prediction, target and sigmas) and
sd-scripts' `get_noise_pred_and_target` / `post_process_loss` split (flux_train_network.py,
sd3_train_network.py): the objective draws the noisy input and its time, the family runs the model,
the objective says what the output should have been and how much each sample's loss counts. The
loss itself (element loss, masks, per-sample loss weights) is shared (`loss.objective_loss`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch

# One generator for the batch, one per sample (drawn sample by sample, then concatenated), or the global RNG.
Generators = torch.Generator | Sequence[torch.Generator] | None


@dataclass(frozen=True)
class NoisyInput:
    model_input: torch.Tensor  # what the model sees (noised latents)
    timesteps: torch.Tensor  # the model's time input, per sample (DDPM steps; sigmas x 1000 for flow matching)
    target: torch.Tensor  # what the model must output


@dataclass(frozen=True)
class Prediction:
    """One step's model output with what it is measured against (the family's `forward` result)."""

    prediction: torch.Tensor
    target: torch.Tensor
    timesteps: torch.Tensor
    weights: torch.Tensor | None  # per-sample weighting of the objective (min-SNR, ...); None: all 1
    huber_c: torch.Tensor | None  # per-sample threshold for huber / smooth_l1; None for l1 / l2


class Objective(ABC):
    loss_type: str  # "l2", "l1", "huber" or "smooth_l1" (the shared element loss)

    @abstractmethod
    def noisy_input(self, latents: torch.Tensor, generator: Generators = None) -> NoisyInput:
        """Draw noise and time for `latents` (every draw of sample i from generator i when given one each)."""

    @abstractmethod
    def weights(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        """Per-sample loss weights at these times, or None when every sample counts 1."""

    @abstractmethod
    def huber_threshold(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        """Per-sample huber_c for huber / smooth_l1 (None for l1 / l2)."""

    @abstractmethod
    def timestep_range(self) -> tuple[int, int]:
        """The [low, high] the training draws time from (validation picks fixed times inside it)."""

    @abstractmethod
    def at_timestep(self, timestep: int) -> Objective:
        """The same objective with time pinned to `timestep` (validation passes)."""

    def measure(self, prediction: torch.Tensor, noisy: NoisyInput) -> Prediction:
        return Prediction(prediction, noisy.target, noisy.timesteps, self.weights(noisy.timesteps),
                          self.huber_threshold(noisy.timesteps))
