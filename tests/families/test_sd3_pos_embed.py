"""SD 3.5's --pos_emb_random_crop_rate and --enable_scaled_pos_embed on diffusers' PatchEmbed: the scaled table is
sd-scripts' get_scaled_2d_sincos_pos_embed, tables are chosen by sd-scripts' area thresholds, random windows are
per sample from each sample's generator, and without either option the module computes what diffusers' does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.embeddings import PatchEmbed

from backend.families.loaded import family
from backend.families.sd3.family import Sd3FlowMatching, Sd3ObjectiveOptions
from backend.families.sd3.pos_embed import (
    ScaledTables,
    Sd3PatchEmbed,
    crop_draws,
    cropping,
    install,
    latent_sizes,
    scaled_sincos_table,
)
from backend.objectives.flow_matching import FlowMatchingConfig
from backend.objectives.loss import LossConfig
from backend.options import parse_args
from backend.options.errors import OptionError


def _sd_scripts_scaled(embed_dim: int, grid_size: int, sample_size: int, base_size: int = 16) -> np.ndarray:
    """sd-scripts' sd3_models.get_scaled_2d_sincos_pos_embed (square grid), as written there."""
    grid_h = np.arange(grid_size, dtype=np.float32) / grid_size
    grid_w = np.arange(grid_size, dtype=np.float32) / grid_size
    scale = base_size * grid_size / sample_size
    shift = 1 * scale * (grid_size - sample_size) / (2 * grid_size)
    grid = np.stack(np.meshgrid(grid_w * scale - shift, grid_h * scale - shift), axis=0).reshape(2, 1, grid_size, grid_size)

    def one_d(dim: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)


def _patch_embed() -> PatchEmbed:
    torch.manual_seed(0)
    return PatchEmbed(height=16, width=16, patch_size=2, in_channels=4, embed_dim=32, pos_embed_max_size=12)


def test_the_scaled_table_is_sd_scripts() -> None:
    ours = scaled_sincos_table(32, 8)
    assert ours.shape == (12, 12, 32)  # 1.5 x the resolution's patch grid
    torch.testing.assert_close(ours.reshape(144, 32), torch.from_numpy(_sd_scripts_scaled(32, 12, 8)).float())


def test_tables_are_chosen_by_area_and_grown_for_a_long_side() -> None:
    assert latent_sizes([(512, 512), (1024, 1024), (768, 768), (1024, 1024)]) == [64, 96, 128]
    tables = ScaledTables(32, 2, [64, 128])  # patch grids 32 and 64: areas up to (32^2 + 64^2) // 2 take 32's
    cpu = torch.device("cpu")
    assert tables.table_for(32, 32, cpu).shape[0] == 48 and tables.table_for(45, 45, cpu).shape[0] == 48
    assert tables.table_for(52, 52, cpu).shape[0] == 96 and tables.table_for(90, 95, cpu).shape[0] == 96
    assert tables.table_for(20, 60, cpu).shape[0] == 90, "too tall for its table: one for its longer side"
    assert tables.table_for(20, 60, cpu) is tables.tables[60]


def test_without_draws_the_module_computes_what_diffusers_does() -> None:
    module, latent = _patch_embed(), torch.randn(2, 4, 8, 10)
    expected = module(latent)
    install(_Holder(module), 0.5, None)
    assert isinstance(module, Sd3PatchEmbed)
    torch.testing.assert_close(module(latent), expected)  # no draws (a sample): the centred window
    module.draws = torch.tensor([[0.9, 0.0, 0.0], [0.7, 0.99, 0.99]])  # both above the rate: centred
    torch.testing.assert_close(module(latent), expected)


def test_each_sample_crops_its_own_window() -> None:
    module, latent = _patch_embed(), torch.randn(2, 4, 8, 10)  # 4 x 5 patches of a 12 x 12 table
    patches = module.proj(latent).flatten(2).transpose(1, 2)
    install(_Holder(module), 1.0, None)
    module.draws = torch.tensor([[0.1, 0.0, 0.0], [0.2, 0.999, 0.999]])  # top-left corner, bottom-right corner
    out = module(latent)
    table = module.pos_embed.reshape(12, 12, 32)
    torch.testing.assert_close(out[0], patches[0] + table[:4, :5].reshape(20, 32))
    torch.testing.assert_close(out[1], patches[1] + table[8:, 7:].reshape(20, 32))


def test_scaled_tables_replace_the_models_table() -> None:
    module, latent = _patch_embed(), torch.randn(1, 4, 8, 8)  # 4 x 4 patches
    patches = module.proj(latent).flatten(2).transpose(1, 2)
    install(_Holder(module), 0.0, [8])  # a latent size of 8: a 4 x 4 patch grid, a 6 x 6 table
    torch.testing.assert_close(module(latent)[0], patches[0] + scaled_sincos_table(32, 4)[1:5, 1:5].reshape(16, 32))
    assert "pos_embed.pos_embed" not in dict(module.named_parameters()) and module.state_dict().keys() == {
        "pos_embed", "proj.weight", "proj.bias"}, "the module's state as loaded"


def test_the_family_draws_windows_after_the_noise_per_sample() -> None:
    objective = family("sd3_medium").objective(None, Sd3ObjectiveOptions(FlowMatchingConfig(), pos_emb_random_crop_rate=0.5),
                                               LossConfig())
    assert isinstance(objective, Sd3FlowMatching) and objective.at_timestep(10).pos_crop_rate == 0.5
    latents = torch.zeros(2, 4, 8, 8)
    seen = {}

    def call(model_input, timesteps, extras):
        seen.update(extras, model_input=model_input)
        return torch.zeros_like(model_input)

    family("sd3_medium").forward(objective, latents, {}, [torch.Generator().manual_seed(s) for s in (1, 2)], call)
    plain = Sd3FlowMatching(objective.config, objective.loss, 1.0)
    generators = [torch.Generator().manual_seed(s) for s in (1, 2)]
    torch.testing.assert_close(seen["model_input"], plain.noisy_input(latents, generators).model_input)
    torch.testing.assert_close(seen["pos_embed_crop"], crop_draws(2, latents.device, generators))  # drawn next


def test_cropping_sets_the_draws_for_the_call_only() -> None:
    holder = _Holder(_patch_embed())
    module = install(holder, 1.0, None)
    draws = torch.rand(1, 3)
    with cropping(holder, draws):
        assert module.draws is draws
    assert module.draws is None


def test_the_options_are_sd3_only_and_checked() -> None:
    base = ["--pretrained_model_name_or_path", "/m.safetensors", "--train_data_dir", "/d", "--output_dir", "/o"]
    args = parse_args("sd3_train", [*base, "--pos_emb_random_crop_rate", "0.3", "--enable_scaled_pos_embed"])
    options = Sd3ObjectiveOptions.from_args(args)
    assert (options.pos_emb_random_crop_rate, options.enable_scaled_pos_embed) == (0.3, True)
    with pytest.raises(OptionError, match="pos_emb_random_crop_rate.*between 0 and 1"):
        parse_args("sd3_train_network", [*base, "--pos_emb_random_crop_rate", "2"])
    with pytest.raises(OptionError, match="only sd3_train_network, sd3_train accept it"):
        parse_args("flux_train_network", [*base, "--enable_scaled_pos_embed"])


class _Holder(torch.nn.Module):
    """A transformer's stand-in: a module with a `pos_embed`."""

    def __init__(self, module: PatchEmbed) -> None:
        super().__init__()
        self.pos_embed = module
