"""--network_module resolution, network_args parsing and checks for modules that are not ours."""

from __future__ import annotations

import logging
import sys

import pytest
import torch

from backend.models.keymap_unet import unet_module_to_original
from backend.networks import args as netargs
from backend.networks import dylora, loader, lora
from backend.networks.args import NetworkArgsError, parse_network_args

from .helpers import randomize_up, te_out, unet_inputs, unet_out


def test_sd_scripts_names_map_to_our_modules():
    assert loader.load_network_module("networks.lora") is lora
    assert loader.load_network_module("networks.dylora") is dylora


def test_module_errors_say_what_is_missing():
    with pytest.raises(loader.NetworkModuleError, match="sd-scripts module.*networks.lora"):
        loader.load_network_module("networks.oft")
    with pytest.raises(loader.NetworkModuleError, match="no create_network"):
        loader.load_network_module("json")
    with pytest.raises(loader.NetworkModuleError, match="cannot import"):
        loader.load_network_module("no_such_package.kohya")


def test_missing_lycoris_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "lycoris", None)  # import of lycoris fails as if not installed
    monkeypatch.delitem(sys.modules, "lycoris.kohya", raising=False)
    with pytest.raises(loader.NetworkModuleError, match="pip install lycoris-lora"):
        loader.load_network_module("lycoris.kohya")


def test_parse_network_args_keeps_strings_like_sd_scripts():
    parsed = parse_network_args(["conv_dim=8", " algo = lokr ", "preset=a=b.toml", "conv_dim=4"])
    assert parsed == {"conv_dim": "4", "algo": "lokr", "preset": "a=b.toml"}
    with pytest.raises(NetworkArgsError, match="key=value"):
        parse_network_args(["conv_dim"])
    reader = netargs.ArgReader({"a": "8", "b": "0.5", "c": "True", "d": "1,2", "e": 3})
    assert (reader.integer("a"), reader.number("b"), reader.flag("c"), reader.integers("d"), reader.integer("e")) == (
        8, 0.5, True, [1, 2], 3)


def test_keys_read_by_follows_kwargs_uses():
    def reads(multiplier, network_dim, network_alpha, vae, text_encoder, unet, **kwargs):
        a = kwargs.get("alpha_key", 1)
        if "flag" in kwargs:
            a += int(kwargs["sub"])
        return a

    def passes_on(multiplier, network_dim, network_alpha, vae, text_encoder, unet, **kwargs):
        return dict(**kwargs)

    assert netargs.keys_read_by(reads) >= {"alpha_key", "flag", "sub", "network_dim"}
    assert netargs.keys_read_by(passes_on) is None


def test_third_party_module_is_imported_and_unread_keys_warned(tmp_path, monkeypatch):
    (tmp_path / "third_party_net.py").write_text(
        "def create_network(multiplier, network_dim, network_alpha, vae, text_encoder, unet, **kwargs):\n"
        "    return kwargs.get('conv_dim')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = loader.load_network_module("third_party_net")
    warnings = loader.unread_network_args(module, {"conv_dim": "4", "conv_dims": "4"})
    assert len(warnings) == 1 and "'conv_dims'" in warnings[0]


@pytest.mark.parametrize("algo", ["locon", "loha", "lokr"])
def test_lycoris_through_the_loader_with_sd_scripts_names(sd1, tmp_path, algo):
    te, unet = sd1
    inputs = unet_inputs(unet)
    module = loader.load_network_module("lycoris.kohya")
    args = {"algo": algo, "preset": "attn-mlp", "conv_dim": "2", "factor": "4"}
    network = loader.create_network(module, 1.0, 4, 2, None, te, unet, None, args)
    network.apply_to(te, unet, True, True)
    randomize_lycoris(network)
    expected_unet, expected_te = unet_out(unet, inputs), te_out(te)
    keys = set(network.state_dict())
    assert any(k.startswith("lora_te_text_model_encoder_layers_0_self_attn_q_proj.") for k in keys)
    assert any(k.startswith("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.") for k in keys)
    assert not any(k.startswith("lora_te_encoder_") for k in keys)  # transformers-5 paths are renamed

    path = tmp_path / f"{algo}.safetensors"
    network.save_weights(str(path), torch.float32, {"ss_network_module": "lycoris.kohya"})
    for lyco in network.unet_loras + network.text_encoder_loras:
        lyco.multiplier = 0.0

    again, weights = loader.create_network_from_weights(module, 1.0, str(path), None, te, unet, for_inference=True)
    assert set(weights) == keys  # returned under the sd-scripts names, as saved
    again.apply_to(te, unet, True, True)
    again.load_weights(str(path))
    torch.testing.assert_close(unet_out(unet, inputs), expected_unet, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(te_out(te), expected_te, atol=1e-5, rtol=1e-4)


def randomize_lycoris(network: torch.nn.Module) -> None:
    """LyCORIS zero-initializes one factor per algorithm; fill every parameter instead."""
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for param in network.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.05)


def test_lycoris_unread_keys_are_warned_with_a_hint(sd1, caplog):
    te, unet = sd1
    module = loader.load_network_module("lycoris.kohya")
    args = {"algo": "lora", "block_dims": ",".join(["4"] * 25), "use_cp": "true", "rank_dropout": "0.1"}
    with caplog.at_level(logging.WARNING, logger="backend.networks.loader"):
        loader.create_network(module, 1.0, 4, 1, None, te, unet, None, args)
    messages = [r.getMessage() for r in caplog.records if r.name == "backend.networks.loader"]
    assert len(messages) == 1
    assert "'block_dims'" in messages[0] and "presets" in messages[0]


def test_our_lora_through_the_loader_round_trip(sd1, tmp_path):
    te, unet = sd1
    inputs = unet_inputs(unet)
    module = loader.load_network_module("networks.lora")
    network = loader.create_network(module, 1.0, 4, 1, None, te, unet, 0.1, {"conv_dim": "2"})
    network.apply_to(te, unet, True, True)
    randomize_up(network)
    network.eval()
    expected = unet_out(unet, inputs)
    path = tmp_path / "ours.safetensors"
    network.save_weights(path, None, {})
    network.set_multiplier(0)
    again, _ = loader.create_network_from_weights(module, 1.0, path, None, te, unet)
    again.apply_to(te, unet, True, True)
    again.load_weights(path)
    again.eval()
    torch.testing.assert_close(unet_out(unet, inputs), expected)


def test_lycoris_on_sdxl_gets_sgm_and_te1_te2_names(sdxl, tmp_path):
    tes, unet = sdxl
    module = loader.load_network_module("lycoris.kohya")
    names = real_sgm_names(unet)
    network = loader.create_network(module, 1.0, 4, 1, None, tes, unet, None, {"algo": "loha", "preset": "attn-mlp"},
                                    unet_module_name=names)
    network.apply_to(tes, unet, True, True)
    randomize_lycoris(network)
    inputs = unet_inputs(unet)
    expected = unet_out(unet, inputs)
    keys = {k.partition(".")[0] for k in network.state_dict()}
    assert "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q" in keys
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj" in keys
    assert "lora_te2_text_model_encoder_layers_0_mlp_fc1" in keys
    # attn-mlp's TimestepEmbedding class exists only in diffusers' tree: sd-scripts' SGM U-Net has a
    # Sequential `time_embed` there, which LyCORIS leaves alone (issue 14, item 15).
    assert not [k for k in keys if "time_embed" in k or "label_emb" in k]
    assert not [k for k in keys if "down_blocks" in k or "lora_te1_encoder" in k]

    path = tmp_path / "xl.safetensors"
    network.save_weights(str(path), None, {})
    for lyco in network.unet_loras + network.text_encoder_loras:
        lyco.multiplier = 0.0
    again, _ = loader.create_network_from_weights(module, 1.0, str(path), None, tes, unet, unet_module_name=names)
    assert {m.lora_name for m in again.unet_loras + again.text_encoder_loras} == {
        m.lora_name for m in network.unet_loras + network.text_encoder_loras
    }
    again.apply_to(tes, unet, True, True)
    again.load_weights(str(path))
    torch.testing.assert_close(unet_out(unet, inputs), expected, atol=1e-5, rtol=1e-4)


def real_sgm_names(unet):
    """The product's diffusers -> SGM module table (it also names blocks, which a model view needs)."""
    return lambda path: unet_module_to_original(path, dict(unet.config))
