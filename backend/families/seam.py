"""The torch side of a family: what the trainer, validation, sampling, networks and tools ask it.

A `ModelFamily` owns its declarations (torch-free facts), its model specification (load, tokenize,
encode prompts, encode/decode latents, predict, pipeline, save: `backend.models.spec`), its training
objective, the conditioning extras its model needs besides the prompt (SDXL's size and crop ids), the
names its networks give the model's layers, and its U-Net block layout for per-block network options.

How the work is split follows finetrainers' `ModelSpecification` (load / prepare conditions / prepare
latents / forward returning prediction, target and weights / validation / save) and sd-scripts'
per-family trainers (`get_noise_pred_and_target`, `post_process_loss`, `get_sai_model_spec`), so a
flow-matching transformer family (Flux, SD3, Wan, LTX-Video) fits the same methods: it brings its own
spec (a transformer instead of a U-Net), a flow-matching `Objective` and its own conditioning extras
(Flux's guidance and image ids); the loop does not change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch

from backend.families.blocks import BlockLayout
from backend.families.declaration import FamilyDeclaration
from backend.families.network_targets import UNET_FAMILIES, NetworkTargets
from backend.objectives.base import Generators, Objective, Prediction
from backend.objectives.ddpm import DDPMObjective, DDPMOptions
from backend.objectives.loss import LossConfig
from backend.objectives.noise import create_noise_scheduler

if TYPE_CHECKING:
    from torch import nn

    from backend.models.components import Components
    from backend.models.spec import ModelSpecification

# (noisy input, timesteps, conditioning extras) -> the model's output; the loop's closure runs the
# text encoders and the U-Net under its autocast and training-method wrapper.
ModelCall = Callable[[torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]
ModuleNameMap = Callable[[str], str]


class FamilyNetworkLayout(Protocol):
    """A family's own LoRA layout (implemented as backend.networks.models.NetworkLayout). Typed by shape
    here because the networks package looks families up by their modules: families do not import it."""

    label: str
    shape_keys: tuple[str, ...]
    network_module: str
    extracts_text_encoders: bool

    def refused_reason(self, key: str) -> str | None: ...


class ModelFamily(ABC):
    declarations: tuple[FamilyDeclaration, ...]
    spec: ModelSpecification
    block_layout: BlockLayout
    network_targets: NetworkTargets = UNET_FAMILIES  # the modules a LoRA wraps
    # How `networks.lora` lays a network over this family's models when sd-scripts has a module of its own
    # for it (FLUX.1: networks/lora_flux.py): targets, names, network_args. None: sd-scripts' networks/lora.py.
    network_layout: FamilyNetworkLayout | None = None

    @property
    def latent_cache_arch(self) -> str:
        """What latent cache files record as their architecture (caches of one cannot serve another)."""
        return self.declarations[0].network_layout

    # The option slice its objective reads (`from_args(args)`, `validate(loss)`); run_setup builds it.
    objective_options: type[Any] = DDPMOptions
    # Family-specific prompt-encoding options (an OptionSlice; FLUX.1's T5 length and mask), or None.
    text_options: type[Any] | None = None

    def objective(self, components: Components | None, options: Any, loss: LossConfig) -> Objective:
        """The training objective (sd-scripts' DDPM, epsilon or v, for the U-Net families), from the
        `objective_options` slice."""
        return DDPMObjective(create_noise_scheduler(options.zero_terminal_snr), options.noise, loss)

    def prepare_training(self, components: Components, options: Any, resolutions: Sequence[tuple[int, int]]) -> None:
        """Set the loaded denoiser up for training with the `objective_options` slice and the datasets'
        resolutions (width, height) (SD 3.5: its positional-embedding options); nothing by default."""
        return None

    def conditioning_extras(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """What the model needs besides the latents, time and prompt, from a data batch (none by default)."""
        return {}

    def forward(self, objective: Objective, latents: torch.Tensor, batch: Mapping[str, Any],
                generator: Generators, call: ModelCall) -> Prediction:
        """One training step's prediction, target and weights for these latents."""
        noisy = objective.noisy_input(latents, generator)
        extras = self.conditioning_extras(batch)
        return objective.measure(call(noisy.model_input, noisy.timesteps, extras), noisy)

    @abstractmethod
    def recognises(self, unet: nn.Module | None, text_encoder_count: int) -> bool:
        """Whether a loaded denoiser (and this many text encoders) is of this family (networks built
        by plug-in modules get only the modules, as sd-scripts' create_network does)."""

    def claims(self, unet: nn.Module | None) -> bool:
        """Whether this denoiser is this family's beyond doubt (a class only it has): asked of every family
        before any `recognises`, which may go by weaker signs such as the number of text encoders."""
        return False

    def network_module_names(self, unet: nn.Module) -> ModuleNameMap | None:
        """How network files name the denoiser's layers (None: by their diffusers paths)."""
        return None

    def native_module_name(self, path: str) -> str:
        """The original (non-diffusers) name of a denoiser module by its diffusers path: what ComfyUI and the
        model's own code call it (`convert_lora --to comfyui`). The same path by default."""
        return path

    # --blocks_to_swap (backend/training/block_swap.py): which blocks can wait in host memory.
    def swap_groups(self, denoiser: nn.Module) -> list[list[nn.Module]]:
        """The denoiser's swappable blocks, in groups in the order the forward runs them (FLUX.1: the 19
        double then the 38 single blocks). Empty: the family does not support block swapping."""
        return []

    def blocks_to_swap_split(self, blocks_to_swap: int, group_sizes: list[int]) -> list[int]:
        """How many of each group's last blocks `--blocks_to_swap N` puts in host memory (default: the
        last N blocks of the groups laid end to end)."""
        counts, left = [], blocks_to_swap
        for size in reversed(group_sizes):
            counts.append(min(size, left))
            left -= counts[-1]
        return counts[::-1]

    def swap_group_sizes(self, config: Mapping[str, Any]) -> list[int]:
        """The sizes of `swap_groups` read from the denoiser's config, so preflight can check N before the
        model is loaded ([]: not known, or no swapping)."""
        return []

    def blocks_to_swap_limit(self, sizes: list[int]) -> int:
        """The largest --blocks_to_swap for swap groups of these sizes: each group keeps two blocks on the
        device, as sd-scripts requires (0: no swapping, also when there are no groups)."""
        limit = 0
        while limit < sum(sizes) and all(
            count <= size - 2 for count, size in zip(self.blocks_to_swap_split(limit + 1, sizes), sizes, strict=True)
        ):
            limit += 1
        return limit


def unet_config_value(unet: nn.Module | None, key: str) -> Any:
    """A value of a denoiser's config (a diffusers FrozenDict, a plain dict, or none)."""
    config = getattr(unet, "config", None)
    if isinstance(config, dict):
        return config.get(key)
    return getattr(config, key, None)
