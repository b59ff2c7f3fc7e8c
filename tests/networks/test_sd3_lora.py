"""networks.lora on SD 3.5: sd-scripts' lora_sd3 names over diffusers' SD3Transformer2DModel. The saved file,
merged into SAI's own weights (fused qkv, (shift, scale) modulations) and converted to diffusers, gives the
output our network gives; network args pick layers and ranks as lora_sd3 does."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from backend.families.sd3.keymap import MMDIT_PREFIX, sai_to_diffusers
from backend.families.sd3.loading import random_modules
from backend.networks import lora
from backend.networks.args import NetworkArgsError
from backend.networks.module import compose
from backend.networks.swapped import HalvesSwappedLoRAModule
from tests.tiny_models import TinyModels


@pytest.fixture(scope="module")
def medium(tiny: TinyModels):
    path = tiny.get("sd3-medium", single_file=True).path
    state = load_file(str(path))
    sai = {k.removeprefix(MMDIT_PREFIX): v for k, v in state.items() if k.startswith(MMDIT_PREFIX)}
    from backend.models.detect import detect_model

    configs = detect_model(path).configs
    torch.manual_seed(0)
    transformer, _, clip_l, clip_g, t5 = random_modules(configs)
    transformer.load_state_dict(sai_to_diffusers(sai))
    return sai, transformer, [clip_l, clip_g, t5]


def run(transformer: torch.nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        return transformer(hidden_states=torch.randn(1, 16, 8, 8, generator=g),
                           encoder_hidden_states=torch.randn(1, 5, 64, generator=g),
                           pooled_projections=torch.randn(1, 64, generator=g), timestep=torch.tensor([500.0]),
                           return_dict=False)[0]


def test_default_names_are_sai_layers_in_joint_blocks(medium) -> None:
    sai, transformer, tes = medium
    network = lora.create_network(1.0, 4, 2.0, None, tes, transformer, train_t5xxl="True")
    names = {m.lora_name for m in network.unet_loras}
    expected = {"lora_unet_" + k.removesuffix(".weight").replace(".", "_") for k, v in sai.items()
                if k.startswith("joint_blocks.") and v.ndim == 2 and ".ln_" not in k}
    assert names == expected
    prefixes = {m.lora_name[:9] for m in network.text_encoder_loras}
    assert prefixes == {"lora_te1_", "lora_te2_", "lora_te3_"}
    last = network.lora_unet_joint_blocks_1_context_block_adaLN_modulation_1
    assert isinstance(last, HalvesSwappedLoRAModule)
    assert network.lora_unet_joint_blocks_0_x_block_attn_qkv.lora_up.weight.shape == (3 * 32, 4)


def test_saved_file_merged_into_sai_weights_gives_our_output(medium, tmp_path) -> None:
    sai, transformer, tes = medium
    network = lora.create_network(1.0, 4, 2.0, None, tes, transformer, emb_dims="[4,4,4,4,4,4]")
    network.apply_to(tes, transformer, apply_text_encoder=False)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for param in network.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * 0.1)
    ours = run(transformer)
    file = tmp_path / "sd3.safetensors"
    network.save_weights(file, None, {})
    weights = load_file(str(file))
    merged = dict(sai)
    for key in weights:
        if not key.endswith(".lora_down.weight"):
            continue
        name = key.removesuffix(".lora_down.weight")
        down, up = weights[key], weights[f"{name}.lora_up.weight"]
        scale = weights[f"{name}.alpha"].item() / down.shape[0]
        target = name.removeprefix("lora_unet_")
        sai_key = next(k for k in sai if k.endswith(".weight") and k.removesuffix(".weight").replace(".", "_") == target)
        merged[sai_key] = sai[sai_key] + compose(up, down).reshape(sai[sai_key].shape) * scale
    assert len([k for k in weights if k.endswith("lora_down.weight")]) == 27  # 19 block layers + 8 embedders
    network.set_multiplier(0.0)
    transformer.load_state_dict(sai_to_diffusers(merged))  # the base layers: SAI weights with the deltas merged
    torch.testing.assert_close(run(transformer), ours, atol=1e-4, rtol=1e-4)
    transformer.load_state_dict(sai_to_diffusers(sai))


def test_from_weights_loads_an_sd_scripts_shaped_file(medium, tmp_path) -> None:
    sai, transformer, tes = medium
    network = lora.create_network(1.0, 4, 2.0, None, tes, transformer, x_mlp_dim="2", context_attn_dim="0",
                                  train_block_indices="1")
    names = {m.lora_name: m.lora_dim for m in network.unet_loras}
    assert all("joint_blocks_1_" in name for name in names)
    assert names["lora_unet_joint_blocks_1_x_block_mlp_fc1"] == 2
    assert not any("context_block_attn" in name for name in names)
    file = tmp_path / "shaped.safetensors"
    network.save_weights(file, None, {})
    shaped, _ = lora.create_network_from_weights(1.0, file, None, tes, transformer)
    assert {m.lora_name: m.lora_dim for m in shaped.unet_loras} == names


@pytest.mark.parametrize(("args", "match"), [
    ({"conv_dim": "4"}, "SD 3.5's joint blocks have no convolutions"),
    ({"down_lr_weight": "1,1"}, "U-Net blocks, which SD 3.5 does not have"),
    ({"emb_dims": "1,2"}, "expected 6 ranks"),
    ({"train_block_indices": "0-5"}, "not a block range of this model"),
    ({"img_attn_dim": "4"}, "img_attn_dim"),
])
def test_bad_args_are_refused(medium, args, match) -> None:
    _, transformer, tes = medium
    with pytest.raises(NetworkArgsError, match=match):
        lora.create_network(1.0, 4, 1.0, None, tes, transformer, **args)
