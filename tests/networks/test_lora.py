"""Our LoRA: scaling, training behaviour, files, dims from weights, args, blocks, LoRA+."""

from __future__ import annotations

import copy
import hashlib

import pytest
import safetensors
import torch

from backend.networks import lora
from backend.networks.args import NetworkArgsError
from backend.networks.network import NetworkWeightsError
from backend.networks.weights_io import load_weights_file, precalculate_safetensors_hashes

from .helpers import randomize_up, sgm_name, te_out, unet_inputs, unet_out


def _applied(te, unet, **kwargs):
    network = lora.create_network(1.0, kwargs.pop("dim", 4), kwargs.pop("alpha", 1), None, te, unet, **kwargs)
    network.apply_to(te, unet, True, True)
    return network


def test_alpha_default_and_scale(sd1):
    te, unet = sd1
    network = lora.create_network(1.0, 8, None, None, te, unet)
    module = network.unet_loras[0]
    assert float(module.alpha) == 1.0 and module.scale == pytest.approx(1 / 8)
    module = lora.create_network(1.0, 8, 0, None, te, unet).unet_loras[0]
    assert float(module.alpha) == 8.0 and module.scale == 1.0  # alpha 0 means alpha = rank
    assert lora.create_network(1.0, None, None, None, te, unet).unet_loras[0].lora_dim == 4


def test_zero_init_training_and_multiplier(sd1):
    te, unet = sd1
    inputs = unet_inputs(unet)
    base_unet, base_te = unet_out(unet, inputs), te_out(te)
    base_weights = {k: v.clone() for k, v in unet.state_dict().items()}
    unet.requires_grad_(False)  # the trainer freezes the base models
    te.requires_grad_(False)
    network = _applied(te, unet)
    assert torch.equal(unet_out(unet, inputs), base_unet)  # up is zero-initialized
    assert torch.equal(te_out(te), base_te)

    groups, _ = network.prepare_optimizer_params(1e-2, 1e-2, 1e-2)
    optimizer = torch.optim.SGD(groups, lr=1e-2)
    network.prepare_grad_etc(te, unet)
    network.on_epoch_start(te, unet)
    for _ in range(3):
        loss = unet(**inputs).sample.pow(2).mean() + te(torch.tensor([[0, 5, 9, 1]])).last_hidden_state.pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    network.eval()
    assert not torch.allclose(unet_out(unet, inputs), base_unet)
    assert not torch.allclose(te_out(te), base_te)
    assert all(torch.equal(v, base_weights[k]) for k, v in unet.state_dict().items())  # no copies, no changes

    network.set_multiplier(0.0)
    assert torch.equal(unet_out(unet, inputs), base_unet)


def test_dropouts_only_act_in_training(sd1):
    te, unet = sd1
    inputs = unet_inputs(unet)
    network = _applied(te, unet, rank_dropout="0.5", module_dropout="0.5", dropout="0.5")
    randomize_up(network)
    network.eval()
    first = unet_out(unet, inputs)
    assert torch.equal(first, unet_out(unet, inputs))
    network.train()
    torch.manual_seed(3)
    assert not torch.allclose(unet_out(unet, inputs), first)


def test_save_load_round_trip_with_metadata_and_hashes(sd1, tmp_path):
    te, unet = sd1
    inputs = unet_inputs(unet)
    te2, unet2 = copy.deepcopy(te), copy.deepcopy(unet)  # before hooks are installed
    network = _applied(te, unet, conv_dim="2")
    randomize_up(network)
    expected = unet_out(unet, inputs)
    path = tmp_path / "out" / "lora.safetensors"
    metadata = {"ss_network_dim": "4", "modelspec.title": "x"}
    network.save_weights(path, torch.float16, metadata)
    assert sorted(p.name for p in path.parent.iterdir()) == ["lora.safetensors"]  # no temp files left

    tensors, saved = load_weights_file(path)
    assert saved["ss_network_dim"] == "4" and saved["modelspec.title"] == "x"
    assert all(t.dtype == torch.float16 for t in tensors.values())
    # the hashes are sd-scripts': over the tensors with ss_* metadata only
    assert (saved["sshs_model_hash"], saved["sshs_legacy_hash"]) == precalculate_safetensors_hashes(
        tensors, {"ss_network_dim": "4"}
    )
    data = path.read_bytes()
    header = int.from_bytes(data[:8], "little")
    assert saved["sshs_model_hash"] == hashlib.sha256(data[8 + header:]).hexdigest()

    torch.manual_seed(9)
    fresh = lora.create_network(1.0, 4, 1, None, te2, unet2, conv_dim="2")
    fresh.apply_to(te2, unet2, True, True)
    report = fresh.load_weights(path)
    assert report.missing_keys == [] and report.unexpected_keys == []
    torch.testing.assert_close(unet_out(unet2, inputs), expected, atol=2e-3, rtol=1e-2)

    pt_path = tmp_path / "lora.pt"
    network.save_weights(pt_path, None, None)
    assert set(torch.load(pt_path, weights_only=True)) == set(network.state_dict())


def test_dim_from_weights_and_alpha_from_file(sd1, tmp_path):
    te, unet = sd1
    network = lora.create_network(1.0, 8, 4, None, te, unet, conv_dim="2", conv_alpha="0.5")
    path = tmp_path / "a.safetensors"
    network.save_weights(path, None, {})
    rebuilt, weights = lora.create_network_from_weights(1.0, str(path), None, te, unet)
    assert set(rebuilt.state_dict()) == set(network.state_dict()) == set(weights)
    dims = {m.lora_name: (m.lora_dim, float(m.alpha)) for m in rebuilt.all_loras()}
    assert dims["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"] == (8, 4.0)
    assert dims["lora_unet_down_blocks_0_resnets_0_conv1"] == (2, 0.5)
    assert dims["lora_te_text_model_encoder_layers_0_mlp_fc1"] == (8, 4.0)

    # continuing with other ranks names the problem and the fix
    wrong = lora.create_network(1.0, 4, 1, None, te, unet, conv_dim="2")
    with pytest.raises(NetworkWeightsError, match="dim_from_weights"):  # said without a traceback (command.py)
        wrong.load_weights(path)


def test_unknown_network_arg_names_the_nearest_key(sd1):
    te, unet = sd1
    with pytest.raises(NetworkArgsError, match="'conv_dims'.*Did you mean 'conv_dim'"):
        lora.create_network(1.0, 4, 1, None, te, unet, conv_dims="8")
    with pytest.raises(NetworkArgsError, match="conv_dim='x'"):
        lora.create_network(1.0, 4, 1, None, te, unet, conv_dim="x")


def test_block_dims_sd1(sd1):
    te, unet = sd1
    dims = ["4"] * 25
    dims[1] = "0"  # IN01 = down_blocks.0.attentions.0: no LoRA
    dims[12] = "6"  # MID
    network = lora.create_network(1.0, 4, 1, None, te, unet, block_dims=",".join(dims),
                                  block_alphas=",".join(["2"] * 25))
    modules = {m.lora_name: m for m in network.all_loras()}
    assert not [n for n in modules if n.startswith("lora_unet_down_blocks_0_attentions_0")]
    mid = modules["lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q"]
    assert (mid.lora_dim, float(mid.alpha)) == (6, 2.0)
    assert modules["lora_te_text_model_encoder_layers_0_mlp_fc1"].lora_dim == 4  # text encoder keeps the rank
    with pytest.raises(NetworkArgsError, match="25"):
        lora.create_network(1.0, 4, 1, None, te, unet, block_dims="4,4")


def test_block_dims_sdxl_use_23_sgm_blocks(sdxl):
    tes, unet = sdxl
    dims = ["4"] * 23
    dims[1 + 3] = "2"  # input_blocks.3
    network = lora.create_network(1.0, 4, 1, None, tes, unet, unet_module_name=sgm_name, block_dims=",".join(dims))
    modules = {m.lora_name: m for m in network.unet_loras}
    assert modules["lora_unet_input_blocks_3_1_proj_in"].lora_dim == 2
    assert modules["lora_unet_middle_block_1_proj_in"].lora_dim == 4


def test_block_lr_weights_make_per_block_groups_and_drop_zero_blocks(sd1):
    te, unet = sd1
    network = lora.create_network(1.0, 4, 1, None, te, unet, down_lr_weight="1,0.05", mid_lr_weight="2",
                                  up_lr_weight="zeros+1", block_lr_zero_threshold="0.1")
    assert not [m for m in network.unet_loras if "down_blocks_0_attentions_0" in m.lora_name]  # IN01 weight 0
    network.apply_to(te, unet, True, True)
    groups, descriptions = network.prepare_optimizer_params(None, 1e-3, 1e-4)
    lrs = dict(zip(descriptions, [g["lr"] for g in groups], strict=True))
    assert lrs["textencoder"] == 1e-4
    assert lrs["unet_block12"] == pytest.approx(2e-3)
    assert lrs["unet_block16"] == pytest.approx(1e-3)  # OUT03 = up_blocks.1.attentions.0, from zeros+1


def test_loraplus_groups_and_text_encoder_lrs(sdxl):
    tes, unet = sdxl
    network = lora.create_network(1.0, 4, 1, None, tes, unet, unet_module_name=sgm_name,
                                  loraplus_lr_ratio="4", loraplus_text_encoder_lr_ratio="2")
    network.apply_to(tes, unet, True, True)
    groups, descriptions = network.prepare_optimizer_params([1e-5, 2e-5], 1e-4, 1e-3)
    lrs = dict(zip(descriptions, [g["lr"] for g in groups], strict=True))
    assert lrs == pytest.approx({
        "textencoder 1": 1e-5, "textencoder 1 plus": 2e-5, "textencoder 2": 2e-5, "textencoder 2 plus": 4e-5,
        "unet": 1e-4, "unet plus": 4e-4,
    })
    plus = {id(p) for g, d in zip(groups, descriptions, strict=True) if d.endswith("plus") for p in g["params"]}
    up_params = {id(m.lora_up.weight) for m in network.all_loras()}
    assert plus == up_params

    # lr 0 freezes that part instead of leaving it out silently
    groups, descriptions = network.prepare_optimizer_params(0, 1e-4, 1e-3)
    assert descriptions == ["unet", "unet plus"]
    network.prepare_grad_etc(tes, unet)
    assert not any(p.requires_grad for m in network.text_encoder_loras for p in m.parameters())


def test_train_unet_only_drops_text_encoder_modules(sd1, tmp_path):
    te, unet = sd1
    base = te_out(te)
    network = lora.create_network(1.0, 4, 1, None, te, unet)
    network.apply_to(te, unet, apply_text_encoder=False, apply_unet=True)
    randomize_up(network)
    assert not [k for k in network.state_dict() if k.startswith("lora_te")]
    assert torch.equal(te_out(te), base)
    groups, descriptions = network.prepare_optimizer_params([1e-4], 1e-4, 1e-4)
    assert descriptions == ["unet"]


def test_max_norm_regularization_caps_norms(sd1):
    te, unet = sd1
    network = _applied(te, unet, alpha=4)
    randomize_up(network)
    scaled, mean_norm, max_norm = network.apply_max_norm_regularization(0.01, "cpu")
    assert scaled > 0 and max_norm == pytest.approx(0.01) and mean_norm <= max_norm + 1e-9
    assert network.apply_max_norm_regularization(0.01, "cpu")[0] == 0


def test_merge_to_matches_applied_network(sd1, tmp_path):
    te, unet = sd1
    inputs = unet_inputs(unet)
    base_te, base_unet = copy.deepcopy(te), copy.deepcopy(unet)
    network = _applied(te, unet, conv_dim="2")
    randomize_up(network)
    expected = unet_out(unet, inputs)
    path = tmp_path / "m.safetensors"
    network.save_weights(path, None, {})

    merger, weights = lora.create_network_from_weights(1.0, str(path), None, base_te, base_unet, for_inference=True)
    assert merger.is_mergeable()
    merger.merge_to(base_te, base_unet, weights, torch.float32, "cpu")
    torch.testing.assert_close(unet_out(base_unet, inputs), expected, atol=1e-5, rtol=1e-4)


def test_weights_that_fit_no_layer_fail_clearly(sd1, tmp_path):
    te, unet = sd1
    path = tmp_path / "unet_only.safetensors"
    lora.create_network(1.0, 4, 1, None, None, unet).save_weights(path, None, {})
    with safetensors.safe_open(str(path), "pt") as handle:
        names = list(handle.keys())
    assert all(k.startswith("lora_unet_") for k in names)
    with pytest.raises(ValueError, match="no module"):
        lora.create_network_from_weights(1.0, str(path), None, te, None)
    with pytest.raises(ValueError, match="none of its"):
        lora.create_network(1.0, 4, 1, None, te, None).load_weights(path)
