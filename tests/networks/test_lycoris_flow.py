"""lycoris.kohya on FLUX.1, Chroma and SD 3.5: LyCORIS is handed BFL's / SAI's layout (layout_view.py), so it
picks the layers it picks on sd-scripts' models and writes sd-scripts' names (fused qkv as one layer); the
network's output is the output of the model with each layer's delta (in sd-scripts' rows) added."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import save_file

from backend.networks import loader
from backend.networks.layout_view import SegmentedLinear

from .test_chroma_lora import chroma_transformer
from .test_chroma_lora import run as run_chroma
from .test_flux_lora import flux  # noqa: F401 (fixture)
from .test_flux_lora import run as run_flux
from .test_sd3_lora import medium  # noqa: F401 (fixture)
from .test_sd3_lora import run as run_sd3

LYCORIS = loader.load_network_module("lycoris.kohya")

DOUBLE = ("img_mod_lin", "img_attn_qkv", "img_attn_proj", "img_mlp_0", "img_mlp_2",
          "txt_mod_lin", "txt_attn_qkv", "txt_attn_proj", "txt_mlp_0", "txt_mlp_2")
SINGLE = ("linear1", "linear2", "modulation_lin")


def make(tes, transformer, **args):
    args.setdefault("algo", "lokr")
    return loader.create_network(LYCORIS, 1.0, 4, 1.0, None, tes, transformer, network_args=args)


def randomize(network, seed: int = 5) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lyco in network.loras:  # not network.parameters(): the layers join the network in apply_to
            for p in lyco.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def merged_reference(network, transformer):
    """A copy of `transformer` with each LyCORIS layer's delta added to the diffusers weights (by rows)."""
    reference = copy.deepcopy(transformer)
    by_id = {id(m): m for m in reference.modules()}
    originals = {id(m): by_id[id(c)] for m, c in zip(transformer.modules(), reference.modules(), strict=True)}
    with torch.no_grad():
        for lyco in network.unet_loras:
            layer = lyco.org_module[0]
            diff = lyco.get_diff_weight(1.0, layer.weight.shape)[0].reshape(layer.weight.shape)
            if isinstance(layer, SegmentedLinear):
                offset = 0
                for part, start, end in layer.segments:
                    originals[id(layer._parts[part])].weight[start:end] += diff[offset:offset + end - start]
                    offset += end - start
            else:
                originals[id(layer)].weight += diff
    return reference


def test_flux_default_preset_names_are_sd_scripts(flux) -> None:  # noqa: F811
    tes, transformer = flux
    network = make(tes, transformer)
    unet = {m.lora_name for m in network.unet_loras}
    expected = {f"lora_unet_double_blocks_0_{n}" for n in DOUBLE}
    expected |= {f"lora_unet_single_blocks_{i}_{n}" for i in range(2) for n in SINGLE}
    assert unet == expected
    te = {m.lora_name for m in network.text_encoder_loras}
    assert te and all(n.startswith("lora_te1_text_model_encoder_layers_") for n in te)  # CLIP-L; T5 not matched


def test_flux_lokr_output_is_the_merged_model(flux, tmp_path) -> None:  # noqa: F811
    tes, transformer = flux
    base = run_flux(transformer)
    network = make(tes, transformer, factor="4")
    randomize(network)
    reference = merged_reference(network, transformer)
    network.apply_to(tes, transformer, False, True)
    ours = run_flux(transformer)
    assert not torch.allclose(ours, base)
    torch.testing.assert_close(ours, run_flux(reference), rtol=1e-3, atol=2e-4)
    path = tmp_path / "lokr.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    for lyco in network.loras:
        lyco.restore()
    torch.testing.assert_close(run_flux(transformer), base)
    # rebuilt from the file alone (--dim_from_weights): the same layers, the same weights, the same output
    rebuilt, weights = loader.create_network_from_weights(LYCORIS, 1.0, path, None, tes, transformer)
    rebuilt.apply_to(tes, transformer, False, True)
    rebuilt.load_weights(str(path))
    state = rebuilt.state_dict()
    assert set(state) == set(weights)
    assert all(torch.equal(state[k], v) for k, v in weights.items())
    torch.testing.assert_close(run_flux(transformer), ours)


def test_chroma_names_skip_modulations() -> None:
    torch.manual_seed(0)
    transformer = chroma_transformer().eval()
    network = make(None, transformer, algo="loha")
    names = {m.lora_name for m in network.unet_loras}
    assert "lora_unet_double_blocks_0_img_attn_qkv" in names and "lora_unet_single_blocks_0_linear1" in names
    assert not any("mod" in n for n in names)
    randomize(network)
    reference = merged_reference(network, transformer)
    network.apply_to(None, transformer, False, True)
    torch.testing.assert_close(run_chroma(transformer), run_chroma(reference), rtol=1e-3, atol=2e-4)


def test_sd3_default_preset_names_and_output(medium) -> None:  # noqa: F811
    _, transformer, tes = medium
    network = make(tes, transformer, algo="locon", conv_dim="2")
    names = {m.lora_name for m in network.unet_loras}
    last = len(transformer.transformer_blocks) - 1
    assert "lora_unet_joint_blocks_0_context_block_attn_qkv" in names
    assert "lora_unet_joint_blocks_0_x_block_mlp_fc2" in names
    assert f"lora_unet_joint_blocks_{last}_context_block_adaLN_modulation_1" in names  # halves swapped
    assert f"lora_unet_joint_blocks_{last}_context_block_attn_proj" not in names  # pre-only
    # sd-scripts' MMDiT: x_embedder is a PatchEmbed, t_embedder a TimestepEmbedding (both in the full preset)
    assert {"lora_unet_x_embedder_proj", "lora_unet_t_embedder_mlp_0", "lora_unet_t_embedder_mlp_2"} <= names
    assert not any(n.startswith(("lora_unet_final_layer", "lora_unet_y_embedder", "lora_unet_context_embedder"))
                   for n in names)
    te = {m.lora_name.split("_text_model")[0] for m in network.text_encoder_loras}
    assert te == {"lora_te1", "lora_te2"}  # CLIP-L, CLIP-G; T5 not matched
    base = run_sd3(transformer)
    randomize(network)
    reference = merged_reference(network, transformer)
    network.apply_to(tes, transformer, False, True)
    try:
        torch.testing.assert_close(run_sd3(transformer), run_sd3(reference), rtol=1e-3, atol=2e-4)
    finally:
        for lyco in network.loras:
            lyco.restore()
    torch.testing.assert_close(run_sd3(transformer), base)


def test_train_norm_is_refused(flux) -> None:  # noqa: F811
    tes, transformer = flux
    with pytest.raises(loader.NetworkModuleError, match="train_norm"):
        make(tes, transformer, train_norm="True")


def test_merging_into_a_fused_layer_is_refused(flux) -> None:  # noqa: F811
    tes, transformer = flux
    network = make(tes, transformer)
    network.apply_to(tes, transformer, False, True)
    with pytest.raises(loader.NetworkModuleError, match="cannot be merged"):
        network.merge_to(None, transformer, network.state_dict(), torch.float32, "cpu")
