"""networks.lora on Chroma: sd-scripts' lora_flux names for the layers Chroma has (no modulation Linears, no
time/vector/guidance embedders), T5 as lora_te3_ only with train_t5xxl, and the saved file read by diffusers'
kohya-Flux conversion (what ChromaPipeline.load_lora_weights uses) giving the output our network gives."""

from __future__ import annotations

import copy

import torch
from diffusers import ChromaTransformer2DModel
from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers

from backend.networks import lora
from backend.networks.naming import family_text_encoder_prefixes
from backend.networks.weights_io import load_weights_file

from .test_flux_lora import INNER, MLP, T5_NAMES, names, randomize, t5_encoder

DOUBLE = ["img_attn_qkv", "img_attn_proj", "img_mlp_0", "img_mlp_2", "txt_attn_qkv", "txt_attn_proj", "txt_mlp_0",
          "txt_mlp_2"]
NAMES = ({f"lora_unet_double_blocks_0_{n}" for n in DOUBLE}
         | {f"lora_unet_single_blocks_{i}_{n}" for i in range(2) for n in ("linear1", "linear2")})


def chroma_transformer() -> ChromaTransformer2DModel:
    torch.manual_seed(0)
    return ChromaTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=2, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, axes_dims_rope=(4, 4, 8), approximator_num_channels=16, approximator_hidden_dim=32,
        approximator_layers=2,
    ).eval()


def run(transformer: ChromaTransformer2DModel) -> torch.Tensor:
    """One forward pass on fixed inputs of the transformer's widths (4 image tokens, 3 text tokens)."""
    g = torch.Generator().manual_seed(1)
    tokens, text, config = 4, 3, transformer.config
    img_ids = torch.stack([torch.zeros(tokens), torch.arange(tokens) // 2, torch.arange(tokens) % 2], dim=-1)
    with torch.no_grad():
        return transformer(hidden_states=torch.randn(1, tokens, config.in_channels, generator=g),
                           encoder_hidden_states=torch.randn(1, text, config.joint_attention_dim, generator=g),
                           timestep=torch.tensor([0.5]),
                           img_ids=img_ids, txt_ids=torch.zeros(text, 3), return_dict=False)[0]


def test_names_are_lora_flux_names_of_the_layers_chroma_has() -> None:
    transformer, tes = chroma_transformer(), [t5_encoder().eval()]
    assert family_text_encoder_prefixes(transformer, 1) == ["lora_te3"]
    assert names(lora.create_network(1.0, 4, 1.0, None, tes, transformer)) == NAMES
    with_t5 = lora.create_network(1.0, 4, 1.0, None, tes, transformer, train_t5xxl="True")
    assert names(with_t5) == NAMES | T5_NAMES
    with_in = lora.create_network(1.0, 4, 1.0, None, tes, transformer, in_dims="[2,2,2,2,2]", train_blocks="single")
    assert names(with_in) - NAMES == {"lora_unet_img_in", "lora_unet_txt_in"}


def test_saved_file_gives_our_output_in_diffusers(tmp_path) -> None:
    transformer, tes = chroma_transformer(), [t5_encoder().eval()]
    base = run(transformer)
    network = lora.create_network(1.0, 4, 2.0, None, tes, transformer)
    network.apply_to(tes, transformer, apply_text_encoder=False)
    randomize(network)
    ours = run(transformer)
    assert not torch.allclose(ours, base, atol=1e-3)
    file = tmp_path / "chroma.safetensors"
    network.save_weights(file, None, {})
    network.set_multiplier(0.0)
    reference = copy.deepcopy(transformer)
    weights = load_weights_file(file)[0]
    with torch.no_grad():
        # diffusers' conversion has the real linear1 widths built in: the tiny one is applied as BFL's fused Linear.
        for i, block in enumerate(reference.single_transformer_blocks):
            name = f"lora_unet_single_blocks_{i}_linear1"
            down, up = weights.pop(f"{name}.lora_down.weight"), weights.pop(f"{name}.lora_up.weight")
            delta = up @ down * (float(weights.pop(f"{name}.alpha")) / down.shape[0])
            members = (block.attn.to_q, block.attn.to_k, block.attn.to_v, block.proj_mlp)
            for layer, rows in zip(members, delta.split([INNER, INNER, INNER, MLP]), strict=True):
                layer.weight += rows
        converted = _convert_kohya_flux_lora_to_diffusers(weights)
        for key, down in converted.items():
            if key.endswith(".lora_A.weight"):
                up = converted[key.replace(".lora_A.", ".lora_B.")]
                layer = reference.get_submodule(key.removeprefix("transformer.")[:-len(".lora_A.weight")])
                layer.weight += up.float() @ down.float()
    torch.testing.assert_close(run(reference), ours, atol=1e-5, rtol=1e-4)
