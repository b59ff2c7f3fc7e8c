"""The family seam: every declared family is found, recognised and answers the same questions."""

from __future__ import annotations

import pytest
import torch

from backend import families
from backend.families.loaded import all_families, family, family_of_modules
from backend.objectives.base import Prediction
from backend.objectives.ddpm import DDPMOptions
from backend.objectives.loss import LossConfig, compute_loss, prediction_loss
from backend.objectives.noise import NoiseConfig, create_noise_scheduler
from backend.options.__main__ import dump


def test_every_declaration_has_its_implementation() -> None:
    for decl in families.DECLARATIONS:
        implementation = family(decl.name)
        assert decl in implementation.declarations
        if decl.is_video:  # finetrainers' one command trains every video model
            assert dict(decl.commands) == {families.VIDEO_KIND: families.VIDEO_COMMAND}
            assert decl.temporal_compression > 0 and decl.spatial_compression > 0
            continue
        # Textual Inversion: SD 1.x/2.x and SDXL only, as in sd-scripts; their files' keys are declared with it.
        # LECO: the DDPM U-Net families (SD 1.x/2.x, SDXL), as in sd-scripts.
        assert set(decl.commands) == set(families.TRAINING_KINDS) - ({"textual_inversion"} if not decl.embedding_keys
                                                                     else set()) - (
            {"leco"} if decl.name not in ("sd1", "sd2", "sdxl") else set())
        assert len(decl.embedding_keys) in (0, len(decl.text_encoder_folders))
        # FLUX.1 and SD 3.5 have no U-Net-style blocks: sd-scripts selects their blocks by index (network args).
        assert implementation.block_layout.count > 0 or decl.network_layout in ("flux", "sd3")
    assert {d.name for f in all_families() for d in f.declarations} == set(families.names())


def test_commands_and_their_families() -> None:
    assert [d.name for d in families.for_command("train_network")] == ["sd1", "sd2"]
    assert families.default_for_command("sdxl_train").name == "sdxl"
    assert families.default_for_command("no_such_command") is None
    assert families.same_network_layout("sd1", "sd2") and not families.same_network_layout("sd1", "sdxl")
    with pytest.raises(families.UnknownFamilyError, match="sd1, sd2, sdxl"):
        families.declaration("flux")


def test_the_schema_dump_carries_the_model_types() -> None:
    assert [t["name"] for t in dump()["model_types"]] == list(families.names())


def test_modules_are_recognised_by_their_family(tiny) -> None:
    for arch, name in (("sd15", "sd1"), ("sdxl", "sdxl")):
        components = family(name).spec.load(tiny.get(arch).path)
        found = family_of_modules(components.unet, len(components.text_encoders))
        assert found is family(components.family)


def test_metadata_identifiers_come_from_the_declaration() -> None:
    sd2 = families.declaration("sd2")
    assert sd2.base_model_version(True) == "sd_v2_v" and sd2.architecture(False, lora=True) == (
        "stable-diffusion-v2-512/lora")
    assert families.declaration("sdxl").native_resolution(True) == 1024  # no v variant: the base facts


def test_sdxl_conditioning_extras_are_its_time_ids() -> None:
    batch = {"original_sizes_hw": torch.tensor([[64, 48]]), "crop_top_lefts": torch.tensor([[0, 8]]),
             "target_sizes_hw": torch.tensor([[64, 64]])}
    assert family("sdxl").conditioning_extras(batch)["time_ids"].tolist() == [[64, 48, 0, 8, 64, 64]]
    assert family("sd1").conditioning_extras(batch) == {}


@pytest.mark.parametrize("loss", [LossConfig(), LossConfig(min_snr_gamma=5.0), LossConfig(loss_type="huber"),
                                  LossConfig(debiased_estimation_loss=True, v_parameterization=True)])
def test_the_ddpm_objective_gives_the_loss_it_always_gave(loss: LossConfig) -> None:
    """forward -> prediction_loss equals the pre-seam compute_loss on the same draws."""
    scheduler = create_noise_scheduler()
    objective = family("sd1").objective(None, DDPMOptions(NoiseConfig(v_parameterization=loss.v_parameterization)), loss)
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    generators = [torch.Generator().manual_seed(i) for i in range(3)]
    model_out = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    seen = {}

    def call(noisy, timesteps, extras):
        seen.update(noisy=noisy, timesteps=timesteps)
        return model_out

    measured = family("sd1").forward(objective, latents, {}, generators, call)
    assert isinstance(measured, Prediction) and torch.equal(measured.timesteps, seen["timesteps"])
    weights = torch.tensor([1.0, 0.5, 2.0])
    expected = compute_loss(model_out, measured.target, measured.timesteps, scheduler, loss, weights)
    assert torch.allclose(prediction_loss(measured, loss.loss_type, weights), expected, rtol=1e-6)
    pinned = objective.at_timestep(200)
    assert pinned.noisy_input(latents).timesteps.tolist() == [200, 200, 200]
