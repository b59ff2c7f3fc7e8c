"""networks.lora on FLUX.1: sd-scripts' lora_flux names, fused qkv/linear1 targets, split_qkv files, and
the saved file read by diffusers' own kohya-Flux conversion giving the output our network gives."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import FluxTransformer2DModel
from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers
from transformers import CLIPTextModel, T5Config, T5EncoderModel

from backend.networks import dylora, lora
from backend.networks.args import NetworkArgsError
from backend.networks.fused import FusedLoRAModule
from backend.networks.loader import NetworkModuleError, refuse_foreign_module
from backend.networks.naming import family_text_encoder_prefixes
from backend.networks.network import LoRANetwork
from backend.networks.weights_io import load_weights_file

from .helpers import clip_config

INNER = 32  # 2 heads x 16
MLP = 4 * INNER


def flux_transformer(guidance: bool = True) -> FluxTransformer2DModel:
    return FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=guidance,
        axes_dims_rope=(4, 4, 8),
    )


def t5_encoder() -> T5EncoderModel:
    return T5EncoderModel(T5Config(vocab_size=32, d_model=32, d_kv=8, d_ff=48, num_layers=1, num_heads=2,
                                   feed_forward_proj="gated-gelu"))


@pytest.fixture
def flux() -> tuple[list[torch.nn.Module], FluxTransformer2DModel]:
    torch.manual_seed(0)
    return [CLIPTextModel(clip_config()).eval(), t5_encoder().eval()], flux_transformer().eval()


def transformer_inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens, text = 4, 3
    img_ids = torch.stack([torch.zeros(tokens), torch.arange(tokens) // 2, torch.arange(tokens) % 2], dim=-1)
    return {
        "hidden_states": torch.randn(1, tokens, 4, generator=g),
        "encoder_hidden_states": torch.randn(1, text, 32, generator=g),
        "pooled_projections": torch.randn(1, 32, generator=g),
        "timestep": torch.tensor([0.5]),
        "guidance": torch.tensor([3.5]),
        "img_ids": img_ids,
        "txt_ids": torch.zeros(text, 3),
    }


def run(transformer: FluxTransformer2DModel) -> torch.Tensor:
    with torch.no_grad():
        return transformer(**transformer_inputs(), return_dict=False)[0]


def randomize(network: LoRANetwork, seed: int = 3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in network.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * 0.1)


def names(network: LoRANetwork) -> set[str]:
    return {lora_.lora_name for lora_ in network.all_loras()}


DOUBLE = ["img_mod_lin", "img_attn_qkv", "img_attn_proj", "img_mlp_0", "img_mlp_2",
          "txt_mod_lin", "txt_attn_qkv", "txt_attn_proj", "txt_mlp_0", "txt_mlp_2"]
SINGLE = ["linear1", "linear2", "modulation_lin"]
DOUBLE_NAMES = {f"lora_unet_double_blocks_0_{n}" for n in DOUBLE}
SINGLE_NAMES = {f"lora_unet_single_blocks_{i}_{n}" for i in range(2) for n in SINGLE}
CLIP_NAMES = {f"lora_te1_text_model_encoder_layers_{i}_{n}" for i in range(2)
              for n in ("self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj",
                        "mlp_fc1", "mlp_fc2")}
T5_NAMES = {f"lora_te3_encoder_block_0_{n}" for n in
            ("layer_0_SelfAttention_q", "layer_0_SelfAttention_k", "layer_0_SelfAttention_v", "layer_0_SelfAttention_o",
             "layer_1_DenseReluDense_wi_0", "layer_1_DenseReluDense_wi_1", "layer_1_DenseReluDense_wo")}


def test_default_names_and_fused_shapes(flux) -> None:
    tes, transformer = flux
    network = lora.create_network(1.0, 4, 2.0, None, tes, transformer)
    assert names(network) == DOUBLE_NAMES | SINGLE_NAMES | CLIP_NAMES
    sd = network.state_dict()
    assert sd["lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight"].shape == (3 * INNER, 4)
    assert sd["lora_unet_double_blocks_0_txt_attn_qkv.lora_down.weight"].shape == (4, INNER)
    assert sd["lora_unet_single_blocks_1_linear1.lora_up.weight"].shape == (3 * INNER + MLP, 4)
    assert sd["lora_unet_single_blocks_1_linear2.lora_down.weight"].shape == (4, INNER + MLP)
    assert sd["lora_unet_double_blocks_0_img_mod_lin.lora_up.weight"].shape == (6 * INNER, 4)
    assert float(sd["lora_unet_single_blocks_0_linear1.alpha"]) == 2.0


@pytest.mark.parametrize(("args", "expected"), [
    ({"train_blocks": "single"}, SINGLE_NAMES | CLIP_NAMES),
    ({"train_blocks": "double"}, DOUBLE_NAMES | CLIP_NAMES),
    ({"train_t5xxl": "True"}, DOUBLE_NAMES | SINGLE_NAMES | CLIP_NAMES | T5_NAMES),
    ({"train_single_block_indices": "1", "img_attn_dim": "0", "single_mod_dim": "0"},
     (DOUBLE_NAMES - {"lora_unet_double_blocks_0_img_attn_qkv", "lora_unet_double_blocks_0_img_attn_proj"})
     | {"lora_unet_single_blocks_1_linear1", "lora_unet_single_blocks_1_linear2"} | CLIP_NAMES),
    ({"in_dims": "[2,2,2,2,2]", "train_blocks": "single"},
     SINGLE_NAMES | CLIP_NAMES | {"lora_unet_img_in", "lora_unet_txt_in"}
     | {f"lora_unet_{n}_{io}_layer" for n in ("time_in", "vector_in", "guidance_in") for io in ("in", "out")}),
])
def test_network_args_choose_layers(flux, args, expected) -> None:
    tes, transformer = flux
    network = lora.create_network(1.0, 4, 1.0, None, tes, transformer, **args)
    assert names(network) == expected


def test_type_dims_and_t5_text_encoder_index(flux) -> None:
    tes, transformer = flux
    network = lora.create_network(1.0, 4, 1.0, None, tes, transformer, single_dim="8", txt_mlp_dim="2",
                                  train_t5xxl="true")
    dims = {lora_.lora_name: lora_.lora_dim for lora_ in network.all_loras()}
    assert dims["lora_unet_single_blocks_0_linear1"] == 8 and dims["lora_unet_single_blocks_0_linear2"] == 8
    assert dims["lora_unet_single_blocks_0_modulation_lin"] == 4
    assert dims["lora_unet_double_blocks_0_txt_mlp_0"] == 2 and dims["lora_unet_double_blocks_0_img_mlp_0"] == 4
    groups, descriptions = network.prepare_optimizer_params([1e-5, 2e-5], 1e-4)
    assert descriptions == ["textencoder 1", "textencoder 2", "unet"]
    assert [g["lr"] for g in groups] == [1e-5, 2e-5, 1e-4]


@pytest.mark.parametrize("args", [{"conv_dim": "4"}, {"block_dims": "1,2"}, {"train_blocks": "some"},
                                  {"in_dims": "1,2"}, {"train_double_block_indices": "0-3"}, {"split_qvk": "True"}])
def test_bad_args_are_refused(flux, args) -> None:
    tes, transformer = flux
    with pytest.raises(NetworkArgsError):
        lora.create_network(1.0, 4, 1.0, None, tes, transformer, **args)


def test_text_encoder_prefixes_come_from_the_family(flux) -> None:
    assert family_text_encoder_prefixes(flux[1], 2) == ["lora_te1", "lora_te3"]


def test_other_modules_are_refused(flux) -> None:
    tes, transformer = flux
    with pytest.raises(NetworkArgsError, match="networks.dylora cannot train FLUX.1"):
        dylora.create_network(1.0, 4, 1.0, None, tes, transformer)
    with pytest.raises(NetworkModuleError, match="cannot train FLUX.1"):  # plug-ins get BFL's view, not its norms
        refuse_foreign_module(lora, tes, transformer, {"train_norm": "True"})


def reference_output(transformer: FluxTransformer2DModel, file) -> torch.Tensor:
    """The file applied the way diffusers reads kohya Flux LoRAs: its conversion, deltas fused into weights.
    diffusers' conversion has the real model's linear1 widths built in (3072 x 3 + 12288), so the tiny
    model's linear1 is applied as BFL's fused Linear instead: its delta, split by rows into q, k, v, mlp."""
    reference = copy.deepcopy(transformer)
    weights = load_weights_file(file)[0]
    with torch.no_grad():
        for i, block in enumerate(reference.single_transformer_blocks):
            name = f"lora_unet_single_blocks_{i}_linear1"
            if f"{name}.lora_down.weight" not in weights:
                continue
            down, up = weights.pop(f"{name}.lora_down.weight"), weights.pop(f"{name}.lora_up.weight")
            delta = up @ down * (float(weights.pop(f"{name}.alpha")) / down.shape[0])
            members = (block.attn.to_q, block.attn.to_k, block.attn.to_v, block.proj_mlp)
            for layer, rows in zip(members, delta.split([INNER, INNER, INNER, MLP]), strict=True):
                layer.weight += rows
        converted = _convert_kohya_flux_lora_to_diffusers(weights)
        assert converted
        for key, down in converted.items():
            if key.endswith(".lora_A.weight"):
                up = converted[key.replace(".lora_A.", ".lora_B.")]
                # (this diffusers version leaves the embedders' keys without the "transformer." prefix)
                layer = reference.get_submodule(key.removeprefix("transformer.")[:-len(".lora_A.weight")])
                layer.weight += up.float() @ down.float()
    return run(reference)


@pytest.mark.parametrize("args", [{}, {"split_qkv": "True"}, {"in_dims": "2,2,2,2,2", "img_mod_dim": "3"}])
def test_saved_file_gives_our_output_in_diffusers(flux, tmp_path, args) -> None:
    tes, transformer = flux
    base = run(transformer)
    network = lora.create_network(1.0, 4, 2.0, None, tes, transformer, **args)
    network.apply_to(tes, transformer, apply_text_encoder=False)
    randomize(network)
    ours = run(transformer)
    assert not torch.allclose(ours, base, atol=1e-3)
    file = tmp_path / "flux.safetensors"
    network.save_weights(file, None, {})
    network.set_multiplier(0.0)
    assert torch.equal(run(transformer), base)
    torch.testing.assert_close(reference_output(transformer, file), ours, atol=1e-5, rtol=1e-4)


def test_split_qkv_saves_merged_and_loads_back(flux, tmp_path) -> None:
    tes, transformer = flux
    network = lora.create_network(1.0, 4, 2.0, None, tes, transformer, split_qkv="True")
    linear1 = network.lora_unet_single_blocks_0_linear1
    assert isinstance(linear1, FusedLoRAModule) and linear1.split
    randomize(network)
    file = tmp_path / "split.safetensors"
    network.save_weights(file, None, {})
    saved = load_weights_file(file)[0]
    up = saved["lora_unet_single_blocks_0_linear1.lora_up.weight"]
    assert up.shape == (3 * INNER + MLP, 16) and saved["lora_unet_single_blocks_0_linear1.lora_down.weight"].shape == (16, INNER)
    assert torch.count_nonzero(up[:INNER, 4:]) == 0  # block-diagonal
    assert float(saved["lora_unet_single_blocks_0_linear1.alpha"]) == 8.0  # alpha * parts: same scale in readers
    assert float(saved["lora_unet_double_blocks_0_img_attn_qkv.alpha"]) == 6.0

    again = lora.create_network(1.0, 4, 2.0, None, tes, transformer, split_qkv="True")
    again.load_weights(file)
    for key, value in network.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    assert again.lora_unet_single_blocks_0_linear1.scale == 0.5


def test_split_file_into_fused_network_gives_same_output(flux, tmp_path) -> None:
    tes, transformer = flux
    split = lora.create_network(1.0, 4, 2.0, None, tes, transformer, split_qkv="True")
    split.apply_to(tes, transformer, apply_text_encoder=False)
    randomize(split)
    expected = run(transformer)
    file = tmp_path / "split.safetensors"
    split.save_weights(file, None, {})
    split.set_multiplier(0.0)

    fused, weights = lora.create_network_from_weights(1.0, file, None, tes, transformer)
    fused.apply_to(tes, transformer, apply_text_encoder=False)
    assert not fused.lora_unet_single_blocks_0_linear1.split
    fused.load_weights(file)
    torch.testing.assert_close(run(transformer), expected, atol=1e-5, rtol=1e-4)


def test_fused_file_refused_by_split_network(flux, tmp_path) -> None:
    tes, transformer = flux
    fused = lora.create_network(1.0, 12, 2.0, None, None, transformer, train_blocks="double")
    randomize(fused)
    file = tmp_path / "fused.safetensors"
    fused.save_weights(file, None, {})
    split = lora.create_network(1.0, 4, 2.0, None, None, transformer, train_blocks="double", split_qkv="True")
    qkv = {k: v for k, v in load_weights_file(file)[0].items() if k.startswith("lora_unet_double_blocks_0_img_attn_qkv")}
    with pytest.raises(ValueError, match="not trained with split_qkv"):
        split.load_weights_sd(qkv)


def test_dim_from_weights_merge_and_max_norm(flux, tmp_path) -> None:
    tes, transformer = flux
    base_model = copy.deepcopy(transformer)
    network = lora.create_network(1.0, 4, 2.0, None, tes, transformer, train_t5xxl="True", in_dims="0,2,0,0,0")
    randomize(network)
    file = tmp_path / "flux.safetensors"
    network.save_weights(file, None, {})
    network.apply_to(tes, transformer)
    expected = run(transformer)

    shaped, weights = lora.create_network_from_weights(1.0, file, None, tes, base_model, for_inference=True)
    assert names(shaped) == names(network)
    shaped.merge_to(tes, base_model, weights, None, None)
    torch.testing.assert_close(run(base_model), expected, atol=1e-5, rtol=1e-4)

    scaled, mean, largest = network.apply_max_norm_regularization(0.01)
    assert scaled == len(network.all_loras()) and largest == pytest.approx(0.01, rel=1e-4)


def test_dropouts_are_drawn_once_per_fused_module(flux) -> None:
    """sd-scripts' fused Linear draws module dropout, then one neuron-dropout mask on the shared down output;
    the four diffusers layers of linear1 must see exactly that one draw."""
    tes, transformer = flux
    network = lora.create_network(1.0, 4, 1.0, None, tes, transformer, train_blocks="single", module_dropout="0.5",
                                  dropout="0.5")
    network.apply_to(tes, transformer, apply_text_encoder=False)
    randomize(network)
    network.train()
    module = network.lora_unet_single_blocks_0_linear1
    block = transformer.single_transformer_blocks[0]
    members = (block.attn.to_q, block.attn.to_k, block.attn.to_v, block.proj_mlp)
    x = torch.randn(1, 3, INNER)
    skipped = 0
    with torch.no_grad():
        for seed in range(10):
            torch.manual_seed(seed)
            delta = torch.cat([m(x) - torch.nn.functional.linear(x, m.weight, m.bias) for m in members], dim=-1)
            torch.manual_seed(seed)
            if torch.rand(()) < 0.5:
                expected = torch.zeros_like(delta)
                skipped += 1
            else:
                lx = torch.nn.functional.dropout(module.lora_down(x), p=0.5)
                expected = module.lora_up(lx) * module.scale
            torch.testing.assert_close(delta, expected)
    assert 0 < skipped < 10


@pytest.mark.parametrize("split", ["False", "True"])
def test_one_draw_per_fused_module_in_a_training_forward(flux, split, monkeypatch) -> None:
    """diffusers hands q, k, v (and the single blocks' MLP) the same tensor: one shared draw per module."""
    tes, transformer = flux
    network = lora.create_network(1.0, 4, 1.0, None, tes, transformer, split_qkv=split, module_dropout="0.3")
    network.apply_to(tes, transformer, apply_text_encoder=False)
    network.train()
    draws: dict[str, int] = {}
    original = FusedLoRAModule._draw

    def counting(self, x):
        draws[self.lora_name] = draws.get(self.lora_name, 0) + 1
        return original(self, x)

    monkeypatch.setattr(FusedLoRAModule, "_draw", counting)
    transformer(**transformer_inputs())
    assert draws == {"lora_unet_double_blocks_0_img_attn_qkv": 1, "lora_unet_double_blocks_0_txt_attn_qkv": 1,
                     "lora_unet_single_blocks_0_linear1": 1, "lora_unet_single_blocks_1_linear1": 1}
    assert all(m._pending is None for m in network.unet_loras if isinstance(m, FusedLoRAModule))


def test_loraplus_groups_and_gradients_of_split_modules(flux) -> None:
    tes, transformer = flux
    network = lora.create_network(1.0, 4, 1.0, None, tes, transformer, split_qkv="True", loraplus_lr_ratio="4")
    network.apply_to(tes, transformer, apply_text_encoder=False)
    groups, descriptions = network.prepare_optimizer_params(None, 1e-4)
    assert descriptions == ["unet", "unet plus"] and groups[1]["lr"] == pytest.approx(4e-4)
    linear1 = network.lora_unet_single_blocks_0_linear1
    plus = {id(p) for p in groups[1]["params"]}
    assert id(linear1.lora_up_3) in plus and id(linear1.lora_down_3) not in plus
    randomize(network)
    network.train()
    transformer(**transformer_inputs(), return_dict=False)[0].square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in linear1.parameters())
