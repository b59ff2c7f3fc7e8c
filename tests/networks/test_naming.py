"""Key names and targets match sd-scripts' networks/lora.py."""

from __future__ import annotations

from backend.networks import lora

from .helpers import sgm_name


def _modules(network) -> dict[str, object]:
    return {m.lora_name: m for m in network.all_loras()}


def test_sd1_keys_use_diffusers_paths_and_text_model_prefix(sd1):
    te, unet = sd1
    network = lora.create_network(1.0, 4, 1, None, te, unet)
    keys = set(network.state_dict())
    for name in (
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_out_0",
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_0_proj",
        "lora_unet_down_blocks_0_attentions_0_proj_in",
        "lora_unet_mid_block_attentions_0_proj_out",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
        "lora_te_text_model_encoder_layers_1_mlp_fc2",
    ):
        for suffix in (".lora_down.weight", ".lora_up.weight", ".alpha"):
            assert name + suffix in keys
    # 1x1 proj_in is a conv LoRA: kernel-shaped down, 1x1 up.
    modules = _modules(network)
    assert tuple(modules["lora_unet_down_blocks_0_attentions_0_proj_in"].lora_down.weight.shape) == (4, 8, 1, 1)
    # no resnet/sampler layers without conv_dim, and nothing outside the target classes
    assert not [k for k in keys if "resnets" in k or "samplers" in k or "conv_in" in k or "time_emb" in k]
    assert network.state_dict()["lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha"].dim() == 0


def test_sdxl_keys_use_injected_sgm_names_and_two_text_encoders(sdxl):
    tes, unet = sdxl
    network = lora.create_network(1.0, 4, 1, None, tes, unet, unet_module_name=sgm_name)
    names = set(_modules(network))
    assert "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q" in names
    assert "lora_unet_middle_block_1_proj_in" in names
    assert "lora_unet_output_blocks_0_1_transformer_blocks_0_attn2_to_k" in names
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj" in names
    assert "lora_te2_text_model_encoder_layers_1_mlp_fc1" in names
    assert not [n for n in names if "down_blocks" in n or "up_blocks" in n or n.startswith("lora_te_")]


def test_sdxl_without_mapper_takes_the_familys_sgm_names(sdxl):
    """A plug-in caller that passes no mapper (sd-scripts' create_network signature) still gets the
    names SDXL LoRA readers expect: the family knows them."""
    tes, unet = sdxl
    plain = lora.create_network(1.0, 4, 1, None, tes, unet)
    injected = lora.create_network(1.0, 4, 1, None, tes, unet, unet_module_name=sgm_name)
    assert list(_modules(plain)) == list(_modules(injected))
    assert any(name.startswith("lora_unet_input_blocks_") for name in _modules(plain))


def test_conv_dim_adds_3x3_layers_of_resnets_and_samplers(sd1):
    te, unet = sd1
    plain = _modules(lora.create_network(1.0, 4, 1, None, te, unet))
    network = lora.create_network(1.0, 4, 1, None, te, unet, conv_dim="2")
    modules = _modules(network)
    added = set(modules) - set(plain)
    assert "lora_unet_down_blocks_0_resnets_0_conv1" in added
    assert "lora_unet_down_blocks_0_downsamplers_0_conv" in added
    assert "lora_unet_up_blocks_0_upsamplers_0_conv" in added
    conv = modules["lora_unet_down_blocks_0_resnets_0_conv1"]
    assert tuple(conv.lora_down.weight.shape) == (2, 8, 3, 3)
    assert float(conv.alpha) == 1.0  # conv_alpha default
    # sd-scripts also wraps the resnets' Linear and 1x1 layers, at the network rank
    assert modules["lora_unet_down_blocks_0_resnets_0_time_emb_proj"].lora_dim == 4
    assert modules["lora_unet_up_blocks_0_resnets_0_conv_shortcut"].lora_dim == 4


def test_sdxl_file_with_diffusers_names_loads_under_sgm_names(sdxl, tmp_path):
    tes, unet = sdxl
    identity_named = lora.create_network(1.0, 4, 1, None, tes, unet, unet_module_name=lambda p: p)
    path = tmp_path / "diffusers_named.safetensors"
    identity_named.save_weights(path, None, {})
    network, _ = lora.create_network_from_weights(1.0, str(path), None, tes, unet, unet_module_name=sgm_name)
    report = network.load_weights(path)
    assert report.missing_keys == [] and report.unexpected_keys == []
    assert "lora_unet_input_blocks_3_1_proj_in" in {m.lora_name for m in network.unet_loras}


def test_the_family_says_which_modules_a_network_wraps(sd1, monkeypatch):
    """Networks take their target classes from the modules' family (a transformer family lists its own)."""
    import dataclasses

    from backend.families.loaded import family

    te, unet = sd1
    sd = family("sd1")
    only_mlp = dataclasses.replace(sd.network_targets, text_encoder=("CLIPMLP",), denoiser_conv=())
    monkeypatch.setattr(sd, "network_targets", only_mlp)
    names = list(_modules(lora.create_network(1.0, 4, 1, None, te, unet, conv_dim="2")))
    te_names = [n for n in names if n.startswith("lora_te_")]
    assert te_names and all("_mlp_" in n for n in te_names)
    assert not [n for n in names if "resnets" in n or "samplers" in n]
