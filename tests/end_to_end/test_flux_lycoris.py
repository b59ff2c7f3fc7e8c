"""LyCORIS on FLUX.1 as sd-scripts users run it (flux_train_network --network_module lycoris.kohya): a LoKr
trains on the tiny schnell model (CLIP-L too), its file names the layers as LyCORIS does on sd-scripts' BFL
model (fused qkv as one layer, `lora_unet_`/`lora_te1_` prefixes), and the file rebuilds a network from itself
alone with every weight loaded back."""

from __future__ import annotations

import math

from .helpers import base_flags, run_trainer
from .test_sdxl_and_lycoris import keys_of, reload_with


def test_a_flux_lokr_trains_and_its_file_has_sd_scripts_names(tiny, train_dir, tmp_path):
    model = tiny.get("flux-schnell")
    flags = base_flags(
        model.path, train_dir, tmp_path, "--network_module", "lycoris.kohya", "--network_dim", "4",
        "--network_alpha", "2", "--network_args", "algo=lokr", "factor=4", "preset=full",
        "--max_train_steps", "2", "--learning_rate", "1e-3", "--save_model_as", "safetensors",
        "--t5xxl_max_token_length", "16", "--gradient_checkpointing",
    )
    result = run_trainer("flux_train_network", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(math.isfinite(v) for v in result.losses().values())
    lora = tmp_path / "tiny.safetensors"
    keys, metadata = keys_of(lora)
    layers = {key.split(".")[0] for key in keys}
    assert "lora_unet_double_blocks_0_img_attn_qkv" in layers and "lora_unet_single_blocks_0_linear1" in layers
    assert "lora_unet_double_blocks_0_img_attn_qkv.lokr_w1" in keys
    assert any(name.startswith("lora_te1_text_model_encoder_layers_0_") for name in layers)
    assert not any(name.startswith("lora_unet_transformer_blocks") or name.startswith("lora_te2") for name in layers)
    assert metadata["ss_network_module"] == "lycoris.kohya"
    reload_with("lycoris.kohya", model.path, "flux_schnell", lora)
