"""SD 3.5's positional-embedding options on diffusers' MMDiT (sd-scripts' sd3_models.MMDiT does them itself):

--pos_emb_random_crop_rate: the MMDiT adds to its patches a window of a fixed sin-cos table
  (`pos_embed_max_size` squared), centred on the table. With this chance a step's image gets a window at a
  random place instead, so the model sees its content at other absolute positions (sd-scripts: "only for
  SD3.5M"). sd-scripts draws one window per batch from the global RNG; here each sample draws its own from
  its generator, after its noise (family.forward), so a sample's window does not depend on its batch.
  Training and validation steps crop (sd-scripts' forward does in both); samples never do.
--enable_scaled_pos_embed: instead of the model's table, one table per training resolution, made with
  KohakuBlueleaf's scaled sin-cos grid (sd-scripts' get_scaled_2d_sincos_pos_embed: the resolution's patch
  grid maps to the central part of the model's 16-unit grid, 1.5 times as many positions around it), and a
  batch uses the table of the resolution whose area is nearest its own (sd-scripts' area thresholds); a
  batch too tall or wide for its table gets a new table for its longer side, as in sd-scripts.

Both replace the forward of the transformer's `pos_embed` (a diffusers PatchEmbed) by `Sd3PatchEmbed`'s;
the module keeps its parameters and buffer, so saving, networks and the state dict see no difference.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from diffusers.models.embeddings import PatchEmbed, get_2d_sincos_pos_embed_from_grid

from backend.messages import msg
from backend.objectives.base import Generators

logger = logging.getLogger(__name__)

POS_EMBED_MAX_RATIO = 1.5  # sd-scripts' MMDiT.POS_EMBED_MAX_RATIO: a scaled table's side / its resolution's
SCALED_BASE_SIZE = 16  # get_scaled_2d_sincos_pos_embed's base_size (sd-scripts leaves the default)
VAE_STRIDE = 8  # pixels per latent: sd-scripts' latent size of a resolution is sqrt(width x height) // 8


def scaled_sincos_table(embed_dim: int, patched_size: int) -> torch.Tensor:
    """sd-scripts' get_scaled_2d_sincos_pos_embed(embed_dim, int(patched_size x 1.5), sample_size=patched_size):
    ``[grid, grid, embed_dim]`` float32."""
    grid_size = int(patched_size * POS_EMBED_MAX_RATIO)
    scale = SCALED_BASE_SIZE * grid_size / patched_size
    shift = scale * (grid_size - patched_size) / (2 * grid_size)
    axis = torch.arange(grid_size, dtype=torch.float32) / grid_size * scale - shift  # float32 as numpy's
    grid_w, grid_h = torch.meshgrid(axis, axis, indexing="xy")  # w first, as np.meshgrid(grid_w, grid_h)
    grid = torch.stack([grid_w, grid_h]).reshape(2, 1, grid_size, grid_size).double()
    table = get_2d_sincos_pos_embed_from_grid(embed_dim, grid, output_type="pt")
    return table.float().reshape(grid_size, grid_size, embed_dim)


def latent_sizes(resolutions: Sequence[tuple[int, int]]) -> list[int]:
    """sd-scripts' latent sizes of the training resolutions (width, height): round(sqrt(w x h)) // 8, once each."""
    return sorted({round(math.sqrt(width * height)) // VAE_STRIDE for width, height in resolutions})


class ScaledTables:
    """sd-scripts' enable_scaled_pos_embed / cropped_scaled_pos_embed table choice."""

    def __init__(self, embed_dim: int, patch_size: int, sizes: Sequence[int]) -> None:
        if not sizes:
            raise ValueError("--enable_scaled_pos_embed needs at least one training resolution")
        self.embed_dim = embed_dim
        patched = sorted({size // patch_size for size in sizes})
        # An area up to the mean of two neighbouring sizes' areas takes the smaller one's table.
        limits = [(a * a + b * b) // 2 for a, b in zip(patched, patched[1:], strict=False)]
        limits.append(int((patched[-1] * POS_EMBED_MAX_RATIO) ** 2))
        self.area_to_size = list(zip(limits, patched, strict=True))
        self.tables = {size: scaled_sincos_table(embed_dim, size) for size in patched}

    def table_for(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """The ``[grid, grid, D]`` table for a patch grid of `height` x `width`, kept on `device` once moved."""
        area = height * width
        size = next((size for limit, size in self.area_to_size if area <= limit), self.area_to_size[-1][1])
        table = self.tables[size]
        if height > table.shape[0] or width > table.shape[0]:
            size = max(height, width)
            logger.warning(msg("sd3.pos_embed.new_table", "scaled positional embedding: a new table for {height}x{width} "
                               "patches, too tall or wide for the tables of the training resolutions",
                               height=height, width=width))
            table = self.tables[size] = scaled_sincos_table(self.embed_dim, size)
            self.area_to_size = sorted([*self.area_to_size, (table.shape[0] ** 2, size)])
        if table.device != device:
            table = self.tables[size] = table.to(device)
        return table


def crop_draws(batch: int, device: torch.device, generator: Generators) -> torch.Tensor:
    """``[B, 3]`` uniforms per sample: whether it crops at random (vs the rate), and where (top, left)."""
    if isinstance(generator, Sequence):
        return torch.stack([torch.rand(3, generator=g, device=g.device).to(device) for g in generator])
    if generator is not None:
        return torch.rand(batch, 3, generator=generator, device=generator.device).to(device)
    return torch.rand(batch, 3, device=device)


def crop_window(table: torch.Tensor, height: int, width: int, draws: torch.Tensor | None, rate: float
                ) -> torch.Tensor:
    """``[B or 1, height x width, D]``: the centred window of `table` ``[M, M, D]``, or for each sample whose
    first draw is below `rate`, a window at the place its other two draws pick (without a host sync)."""
    side = table.shape[0]
    top, left = (side - height) // 2, (side - width) // 2
    if draws is None or rate <= 0:
        return table[top: top + height, left: left + width].reshape(1, height * width, -1)
    random = draws[:, 0] < rate
    tops = torch.where(random, (draws[:, 1] * (side - height + 1)).long().clamp(max=side - height), top)
    lefts = torch.where(random, (draws[:, 2] * (side - width + 1)).long().clamp(max=side - width), left)
    rows = tops[:, None] + torch.arange(height, device=draws.device)  # [B, h]
    cols = lefts[:, None] + torch.arange(width, device=draws.device)  # [B, w]
    window = table.to(draws.device)[rows[:, :, None], cols[:, None, :]]  # [B, h, w, D]
    return window.reshape(draws.shape[0], height * width, -1)


class Sd3PatchEmbed(PatchEmbed):
    """A PatchEmbed whose window of the position table may be cropped at random per sample, and whose table may
    be a scaled one per resolution. Installed by changing an existing module's class (`install`)."""

    random_crop_rate: float = 0.0
    scaled: ScaledTables | None = None
    draws: torch.Tensor | None = None  # this call's crop_draws (Sd3Spec.predict sets them around the call)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        if self.scaled is None and (self.draws is None or self.random_crop_rate <= 0):
            return super().forward(latent)
        height, width = latent.shape[-2] // self.patch_size, latent.shape[-1] // self.patch_size
        patches = self.proj(latent).flatten(2).transpose(1, 2)  # BCHW -> BNC; SD3's PatchEmbed has no norm
        if self.scaled is not None:
            table = self.scaled.table_for(height, width, patches.device)
        else:
            side = self.pos_embed_max_size
            if height > side or width > side:
                raise ValueError(f"{height}x{width} patches exceed pos_embed_max_size {side}")
            table = self.pos_embed.reshape(side, side, -1)
        window = crop_window(table, height, width, self.draws, self.random_crop_rate)
        return (patches + window).to(patches.dtype)  # as PatchEmbed: added in float32, then the input's dtype


def install(transformer: torch.nn.Module, random_crop_rate: float, sizes: Sequence[int] | None) -> Sd3PatchEmbed:
    """Make the transformer's `pos_embed` an Sd3PatchEmbed (same parameters and buffer) with these settings;
    `sizes`: the training resolutions' latent sizes for --enable_scaled_pos_embed, or None."""
    module = transformer.pos_embed
    if not isinstance(module, PatchEmbed) or module.pos_embed_max_size is None or module.layer_norm:
        raise TypeError(f"not SD3's cropping PatchEmbed: {type(module).__name__}")
    module.__class__ = Sd3PatchEmbed  # a subclass adding a forward: the module's state stays as loaded
    module.random_crop_rate = random_crop_rate
    module.scaled = None if sizes is None else ScaledTables(module.proj.out_channels, module.patch_size, sizes)
    logger.info(msg("sd3.pos_embed.installed", "SD 3.5 positional embedding: random windows at rate {rate}; "
                    "scaled tables for latent sizes {sizes}", rate=random_crop_rate,
                    sizes="off" if sizes is None else ", ".join(map(str, sizes))))
    return module


@contextmanager
def cropping(transformer: torch.nn.Module, draws: torch.Tensor | None) -> Iterator[None]:
    """`draws` (crop_draws) for the transformer calls inside."""
    module = getattr(transformer, "pos_embed", None)
    if draws is None or not isinstance(module, Sd3PatchEmbed):
        yield
        return
    module.draws = draws
    try:
        yield
    finally:
        module.draws = None
