"""FLUX.1's specification and family on a tiny transformer: packing as diffusers' pipeline packs, the
transformer called as the pipeline calls it, guidance only where the model embeds it, the T5 padding
mask reaching the joint attention, and the guided flow-matching objective through `family.forward`."""

from __future__ import annotations

import pytest
import torch
from diffusers import FluxPipeline, FluxTransformer2DModel

from backend.families.flux.family import FluxObjectiveOptions, GuidedFlowMatching
from backend.families.flux.spec import FluxSpec, joint_attention_mask, pack_latents, unpack_latents
from backend.families.loaded import family, family_of_modules
from backend.models.components import PromptEmbeds
from backend.objectives.flow_matching import FlowMatchingConfig
from backend.objectives.loss import LossConfig

TEXT_WIDTH, POOLED_WIDTH = 32, 24


def tiny_transformer(guidance: bool) -> FluxTransformer2DModel:
    torch.manual_seed(0)
    return FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=TEXT_WIDTH, pooled_projection_dim=POOLED_WIDTH,
        guidance_embeds=guidance, axes_dims_rope=[4, 4, 8],
    ).eval()


def embeds(batch: int = 2, tokens: int = 6) -> PromptEmbeds:
    generator = torch.Generator().manual_seed(1)
    return PromptEmbeds(torch.randn(batch, tokens, TEXT_WIDTH, generator=generator),
                        torch.randn(batch, POOLED_WIDTH, generator=generator))


def test_packing_is_the_pipelines_and_unpacking_inverts_it() -> None:
    latents = torch.randn(2, 16, 6, 4)
    packed = pack_latents(latents)
    assert torch.equal(packed, FluxPipeline._pack_latents(latents, 2, 16, 6, 4))
    assert torch.equal(unpack_latents(packed, 6, 4), latents)
    # The pipeline unpacks from pixel sizes (8x VAE compression).
    assert torch.equal(FluxPipeline._unpack_latents(packed, 48, 32, 8), latents)


@pytest.mark.parametrize("guidance", [True, False])
def test_predict_calls_the_transformer_as_the_pipeline_does(guidance: bool) -> None:
    transformer = tiny_transformer(guidance)
    latents = torch.randn(2, 16, 4, 6, generator=torch.Generator().manual_seed(2))
    text = embeds()
    timesteps = torch.tensor([250.0, 900.0])
    scale = torch.tensor([3.5, 1.0])
    with torch.no_grad():
        ours = FluxSpec().predict(transformer, latents, timesteps, text, guidance=scale)
        ids = FluxPipeline._prepare_latent_image_ids(2, 2, 3, "cpu", torch.float32)
        reference = transformer(
            hidden_states=FluxPipeline._pack_latents(latents, 2, 16, 4, 6), timestep=timesteps / 1000,
            guidance=scale if guidance else None, pooled_projections=text.pooled,
            encoder_hidden_states=text.hidden_states, txt_ids=torch.zeros(6, 3), img_ids=ids, return_dict=False,
        )[0]
    assert ours.shape == latents.shape
    assert torch.allclose(ours, unpack_latents(reference, 4, 6), atol=1e-6)
    if guidance:  # dev's output depends on the guidance it is given
        with torch.no_grad():
            other = FluxSpec().predict(transformer, latents, timesteps, text, guidance=scale * 2)
        assert not torch.allclose(other, ours)


def test_the_t5_mask_hides_padded_text_from_the_joint_attention() -> None:
    transformer = tiny_transformer(False)
    latents = torch.randn(1, 16, 4, 4, generator=torch.Generator().manual_seed(3))
    text = embeds(batch=1)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0]])
    spec = FluxSpec()
    with torch.no_grad():
        masked = spec.predict(transformer, latents, torch.tensor([500.0]),
                              PromptEmbeds(text.hidden_states, text.pooled, mask))
        garbage = text.hidden_states.clone()
        garbage[:, 3:] = 100.0  # what padded positions hold does not matter once they are masked
        masked_garbage = spec.predict(transformer, latents, torch.tensor([500.0]),
                                      PromptEmbeds(garbage, text.pooled, mask))
        unmasked_garbage = spec.predict(transformer, latents, torch.tensor([500.0]), PromptEmbeds(garbage, text.pooled))
    assert torch.allclose(masked, masked_garbage, atol=1e-5)
    assert not torch.allclose(masked, unmasked_garbage, atol=1e-3)
    assert joint_attention_mask(mask, 4).shape == (1, 1, 1, 10)


def test_the_family_trains_with_guided_flow_matching() -> None:
    flux = family("flux_dev")
    transformer = tiny_transformer(True)
    assert family_of_modules(transformer, 2) is flux
    options = FluxObjectiveOptions(FlowMatchingConfig(timestep_sampling="shift", model_prediction_type="raw"), 1.0)
    objective = flux.objective(None, options, LossConfig())
    assert isinstance(objective, GuidedFlowMatching) and objective.guidance_scale == 1.0
    assert objective.at_timestep(500).guidance_scale == 1.0
    latents = torch.randn(2, 16, 4, 4)
    seen = {}

    def call(noisy, timesteps, extras):
        seen.update(extras)
        return FluxSpec().predict(transformer, noisy, timesteps, embeds(), **extras)

    generators = [torch.Generator().manual_seed(i) for i in range(2)]
    measured = flux.forward(objective, latents, {}, generators, call)
    assert seen["guidance"].tolist() == [1.0, 1.0]
    assert measured.prediction.shape == latents.shape and torch.all((measured.timesteps > 0) & (measured.timesteps < 1000))
    # raw: the target is the velocity noise - latents, drawn from the same per-sample generators
    again = objective.noisy_input(latents, [torch.Generator().manual_seed(i) for i in range(2)])
    assert torch.equal(again.target, measured.target)
