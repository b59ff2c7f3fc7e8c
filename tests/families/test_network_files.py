"""What the LoRA tools know of families, derived from the declarations (torch-free): model names
(a family, or a layout when a file cannot tell which of its families), labels, fits, key layouts."""

from __future__ import annotations

import dataclasses

import pytest

from backend import families
from backend.families import network_files


def test_model_names_labels_and_fits() -> None:
    assert network_files.layouts() == ("sd", "sdxl", "flux", "sd3", "ltx_video", "wan", "hunyuan_video", "cogvideox")
    assert network_files.model_names() == ("sd1", "sd2", "sdxl", "flux_dev", "flux_schnell", "chroma", "sd3_medium",
                                           "sd3_large", "ltx_video", "wan", "hunyuan_video", "cogvideox", "sd", "flux", "sd3")
    assert [network_files.label(m) for m in network_files.model_names()] == [
        "SD 1.x", "SD 2.x", "SDXL", "FLUX.1 [dev]", "FLUX.1 [schnell]", "Chroma", "SD 3.5 Medium", "SD 3.5 Large",
        "LTX-Video", "Wan 2.1 T2V", "HunyuanVideo", "CogVideoX", "SD 1.x/2.x", "FLUX.1", "SD 3.5"]
    assert network_files.fits("sd3", "sd3_large") and not network_files.fits("sd3_medium", "sd3_large")
    assert network_files.fits("flux", "flux_schnell") and not network_files.fits("flux_dev", "flux_schnell")
    assert network_files.fits("flux", "chroma") and not network_files.fits("chroma", "flux_dev")  # lora_flux names
    assert network_files.fits("sd", "sd2") and network_files.fits("sd1", "sd1")
    assert not network_files.fits("sd", "sdxl") and not network_files.fits("sd1", "sd2")
    assert network_files.config_sets("sd") == ("sd15", "sd2") and network_files.config_sets("sd2") == ("sd2",)
    assert network_files.joined_labels({"sdxl", "sd"}, "and") == "SD 1.x/2.x and SDXL"
    assert network_files.joined_labels({"sd1"}, "or") == "SD 1.x"
    with pytest.raises(families.UnknownFamilyError, match="sd1, sd2, sdxl, flux_dev, flux_schnell, chroma, sd3_medium"):
        network_files.families_of("sd4")


def test_what_a_file_tells() -> None:
    assert [network_files.of_base_model_version(v) for v in ("sd_v1", "sd_v2_v", "sdxl_base_v1-0", "x", None)] == [
        "sd1", "sd2", "sdxl", None, None]
    assert network_files.of_base_model_version("flux1") == "flux"  # dev or schnell: the layout
    assert network_files.of_base_model_version("chroma") == "chroma"  # sd-scripts' MODEL_VERSION_CHROMA
    assert [network_files.of_text_encoder_width("sd", w) for w in (768, 1024, 32)] == ["sd1", "sd2", "sd"]
    assert network_files.of_cross_attention_width("sd", 1024) == "sd2"
    assert network_files.of_text_encoder_width("sdxl", 32) == "sdxl"  # its layout's only family
    layout = network_files.layout_of_network_keys
    assert layout(["lora_te_text_model_encoder_layers_0_self_attn_q_proj"]) == "sd"
    assert layout(["lora_unet_conv_in"]) == "sd"  # no layout's own names: the first layout
    # SDXL files may name U-Net layers by diffusers paths too: its own names (lora_te2_) decide
    assert layout(["lora_unet_down_blocks_1_attentions_0_proj_in", "lora_te2_text_model_x"]) == "sdxl"
    # CLIP-L is lora_te1_ in SDXL's and FLUX.1's files alike: the denoiser's names decide
    assert layout(["lora_te1_text_model_x", "lora_unet_double_blocks_0_img_attn_qkv"]) == "flux"
    assert layout(["lora_te3_encoder_block_0_layer_0_SelfAttention_q"]) == "flux"
    assert network_files.layouts_of_network_keys(["lora_te1_text_model_x"]) == ["sdxl", "flux"]
    assert network_files.undecided_layouts(["lora_te1_text_model_x"]) == ["sdxl", "flux"]
    sdxl_with_diffusers_names = ["lora_unet_down_blocks_1_attentions_0_proj_in", "lora_unet_input_blocks_4_1_proj_in"]
    assert network_files.layouts_of_network_keys(sdxl_with_diffusers_names) == ["sdxl", "sd"]
    assert network_files.undecided_layouts(sdxl_with_diffusers_names) == ["sdxl"]


def test_sd_scripts_flags_of_the_families() -> None:
    assert network_files.families_of_tool_flag("--sdxl") == ("sdxl",)
    assert network_files.families_of_tool_flag("--v2") == ("sd2",)
    assert [network_files.sd_scripts_v2(name) for name in families.names()] == [False, True] + [False] * (
        len(families.names()) - 2)


def test_a_new_family_needs_only_its_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A family with a layout of its own is a new model name, label and key layout without any table."""
    sdxl = families.declaration("sdxl")
    sd3 = dataclasses.replace(sdxl, name="sd4", label="SD4", network_layout="sd4", network_label="SD4",
                              network_key_prefixes=("lora_unet_quad_blocks_",), implied_options={},
                              denoiser_folder="transformer")
    declarations = (*families.DECLARATIONS, sd3)
    monkeypatch.setattr(network_files, "DECLARATIONS", declarations)
    monkeypatch.setattr(network_files, "names", lambda: tuple(d.name for d in declarations))
    assert network_files.model_names() == ("sd1", "sd2", "sdxl", "flux_dev", "flux_schnell", "chroma", "sd3_medium",
                                           "sd3_large", "ltx_video", "wan", "hunyuan_video", "cogvideox", "sd4", "sd", "flux", "sd3")
    assert network_files.layout_of_network_keys(["lora_unet_quad_blocks_0_x_block_attn_qkv"]) == "sd4"
    assert network_files.joined_labels(network_files.layouts(), "or") == "SD 1.x/2.x, SDXL, FLUX.1, SD 3.5, LTX-Video, Wan 2.1 T2V, HunyuanVideo, CogVideoX or SD4"
    assert network_files.fits("sd4", "sd4") and not network_files.fits("sd4", "sdxl")
