"""LyCORIS picks the same layers, under the same names, as on sd-scripts' own models (issue 14, item 15).

sd-scripts hands LyCORIS its own U-Nets: for SDXL the original SGM layout (sdxl_original_unet.py),
for SD 1.x/2.x diffusers' layout (original_unet.py); both call the attention class `CrossAttention`.
LyCORIS' presets (lycoris/config.py) select by class name ("every Linear/Conv inside a
Transformer2DModel") and by module path (`conv_in`, `time_embedding.linear_1`, matched with
`re.match`). Applied to sd-scripts' trees these rules give the sets written below as data, per
region of the U-Net; the tests check that what our bridge gives LyCORIS yields exactly those.
(Checked by hand against LyCORIS on sd-scripts' full-size SDXL, SD 1.5 and SD 2 U-Nets built on the
meta device from sd-scripts 48d368fa: every preset, with and without train_norm, same sets.)
"""

from __future__ import annotations

import re

import pytest
import torch

from backend.models.keymap_unet import unet_module_to_original
from backend.networks import loader
from backend.networks.naming import layer_kind
from gui.training.network_types import LYCORIS_PRESETS, NETWORK_TYPES

# Regions of a U-Net as LyCORIS' presets see sd-scripts' classes (Transformer2DModel blocks,
# ResnetBlock2D, Downsample2D/Upsample2D, CrossAttention) and names.
REGIONS_BY_PRESET = {
    # preset: (regions trained, 3x3 convs on)
    "full": ({"transformer", "resnet", "sampler", "in_out", "time_embedding"}, True),
    "full-lin": ({"transformer", "resnet", "time_embedding"}, False),
    "attn-mlp": ({"transformer", "time_embedding"}, False),
    "attn-only": ({"attention"}, False),
    "unet-only": ({"transformer", "resnet", "sampler", "in_out", "time_embedding"}, True),
    "unet-transformer-only": ({"transformer", "time_embedding"}, False),
    "unet-convblock-only": ({"resnet", "sampler", "in_out"}, True),
}
# Which presets train text encoder layers (CLIPAttention / CLIPMLP): self_attn only for attn-only.
TEXT_ENCODER_BY_PRESET = {"full": "all", "full-lin": "all", "attn-mlp": "all", "attn-only": "attention"}
LYCORIS_ALGOS = sorted({t.algo for t in NETWORK_TYPES.values() if t.module == loader.LYCORIS_MODULE})

# sd-scripts' SDXL U-Net (SGM paths). `conv_in`/`conv_out` and `time_embedding.*` do not exist there
# and its time/label embeddings are plain Sequentials, so "in_out" and "time_embedding" are empty.
SGM_REGIONS = [
    ("attention", r"\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$"),
    ("transformer", r"^(input_blocks\.\d+\.1|middle_block\.1|output_blocks\.\d+\.1)\."),
    ("resnet", r"^(input_blocks\.\d+\.0|middle_block\.[02]|output_blocks\.\d+\.0)\."
               r"(in_layers|emb_layers|out_layers|skip_connection)"),
    ("sampler", r"^(input_blocks\.\d+\.0\.op|output_blocks\.\d+\.[12]\.conv)$"),
]
# sd-scripts' SD 1.x/2.x U-Net (diffusers paths); its time embedding is a TimestepEmbedding.
SD_REGIONS = [
    ("attention", r"\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$"),
    ("transformer", r"\.attentions\.\d+\."),
    ("resnet", r"\.resnets\.\d+\."),
    ("sampler", r"\.(downsamplers|upsamplers)\.0\.conv$"),
    ("in_out", r"^conv_(in|out)$"),
    ("time_embedding", r"^time_embedding\.linear_[12]$"),
]


def _regions(path: str, table: list[tuple[str, str]]) -> set[str]:
    return {name for name, pattern in table if re.search(pattern, path)}


def expected_unet_names(unet: torch.nn.Module, preset: str, sdxl: bool) -> set[str]:
    """Layer names LyCORIS picks on sd-scripts' U-Net for `preset`, by the region rules above."""
    regions, conv = REGIONS_BY_PRESET[preset]
    table = SGM_REGIONS if sdxl else SD_REGIONS
    names = set()
    for path, module in unet.named_modules():
        kind = layer_kind(module)
        if kind is None or (kind == "conv" and not conv):
            continue
        sd_path = unet_module_to_original(path, dict(unet.config)) if sdxl else path
        found = _regions(sd_path, table)
        if found & regions:
            names.add("lora_unet_" + sd_path.replace(".", "_"))
    return names


def expected_te_names(text_encoders: list[torch.nn.Module], preset: str) -> set[str]:
    which = TEXT_ENCODER_BY_PRESET.get(preset)
    if which is None:
        return set()
    layers = ["self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj"]
    layers += ["mlp_fc1", "mlp_fc2"] if which == "all" else []
    prefixes = ["lora_te"] if len(text_encoders) == 1 else [f"lora_te{i + 1}" for i in range(len(text_encoders))]
    return {f"{prefix}_text_model_encoder_layers_{n}_{layer}" for prefix, te in zip(prefixes, text_encoders, strict=True)
            for n in range(te.config.num_hidden_layers) for layer in layers}


def lycoris_names(text_encoder, unet, sdxl: bool, **args: str) -> set[str]:
    module = loader.load_network_module("lycoris.kohya")
    names = (lambda path: unet_module_to_original(path, dict(unet.config))) if sdxl else None
    network = loader.create_network(module, 1.0, 4, 1, None, text_encoder, unet, None, {"conv_dim": "4", **args},
                                    unet_module_name=names)
    return {m.lora_name for m in network.unet_loras + network.text_encoder_loras}


@pytest.mark.parametrize("preset", LYCORIS_PRESETS)
def test_sdxl_presets_pick_what_they_pick_on_sd_scripts_sgm_unet(sdxl, preset):
    tes, unet = sdxl
    names = lycoris_names(tes, unet, True, preset=preset, algo="locon")
    assert names == expected_unet_names(unet, preset, sdxl=True) | expected_te_names(tes, preset)
    # The six layers diffusers' tree added under `full` (conv_in/out, time and label embeddings):
    assert not names & {"lora_unet_input_blocks_0_0", "lora_unet_out_2", "lora_unet_time_embed_0",
                        "lora_unet_time_embed_2", "lora_unet_label_emb_0_0", "lora_unet_label_emb_0_2"}


@pytest.mark.parametrize("preset", LYCORIS_PRESETS)
def test_sd1_presets_pick_what_they_pick_on_sd_scripts_unet(sd1, preset):
    te, unet = sd1
    names = lycoris_names(te, unet, False, preset=preset, algo="locon")
    assert names == expected_unet_names(unet, preset, sdxl=False) | expected_te_names([te], preset)


def test_attn_only_trains_the_unet_attention_layers(sd1, sdxl):
    """sd-scripts' attention class is CrossAttention: diffusers' `Attention` found nothing before."""
    for (te, unet), sdxl_model in ((sd1, False), (sdxl, True)):
        unet_names = {n for n in lycoris_names(te, unet, sdxl_model, preset="attn-only") if n.startswith("lora_unet")}
        assert unet_names and all(re.search(r"attn[12]_(to_q|to_k|to_v|to_out_0)$", n) for n in unet_names)


@pytest.mark.parametrize("algo", LYCORIS_ALGOS)
def test_every_algo_picks_the_same_layers(sdxl, algo):
    tes, unet = sdxl
    expected = expected_unet_names(unet, "full", sdxl=True) | expected_te_names(tes, "full")
    assert lycoris_names(tes, unet, True, preset="full", algo=algo) == expected


def test_train_norm_adds_the_norms_inside_the_same_blocks(sdxl):
    tes, unet = sdxl
    names = lycoris_names(tes, unet, True, preset="full", algo="locon", train_norm="True")
    added = names - lycoris_names(tes, unet, True, preset="full", algo="locon")
    assert "lora_unet_input_blocks_1_0_in_layers_0" in added  # the resnet's first GroupNorm, by its SGM name
    assert "lora_unet_output_blocks_0_1_norm" in added
    assert not [n for n in added if n.startswith("lora_unet_out_0")]  # conv_norm_out is outside every block


def test_third_party_modules_see_sd_scripts_layout_and_the_models_attributes(sdxl, tmp_path, monkeypatch):
    (tmp_path / "peeking_net.py").write_text(
        "def create_network(multiplier, network_dim, network_alpha, vae, text_encoder, unet, **kwargs):\n"
        "    classes = {name: type(m).__name__ for name, m in unet.named_modules()}\n"
        "    return {'classes': classes, 'te': [dict(t.named_modules()) for t in text_encoder],\n"
        "            'cross_attention_dim': unet.config.cross_attention_dim}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    tes, unet = sdxl
    module = loader.load_network_module("peeking_net")
    seen = loader.create_network(module, 1.0, 4, 1, None, tes, unet, None, {},
                                 unet_module_name=lambda path: unet_module_to_original(path, dict(unet.config)))
    classes = seen["classes"]
    assert classes[""] == "SdxlUNet2DConditionModel" and classes["time_embed"] == "Sequential"
    assert classes["input_blocks.3.1"] == "Transformer2DModel"
    assert classes["input_blocks.3.1.transformer_blocks.0.attn1"] == "CrossAttention"
    assert classes["input_blocks.1.0"] == "ResnetBlock2D" and classes["input_blocks.1.0.in_layers"] == "Sequential"
    assert "conv_in" not in classes and "down_blocks" not in classes
    te1 = seen["te"][0]
    assert te1["text_model.encoder.layers.0.self_attn.q_proj"] is tes[0].get_submodule("encoder.layers.0.self_attn.q_proj")
    assert seen["cross_attention_dim"] == unet.config.cross_attention_dim
