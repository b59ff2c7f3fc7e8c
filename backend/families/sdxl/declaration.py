"""SDXL base: the torch-free facts."""

from pathlib import Path

from backend.families.clip import CLIP_G, CLIP_L
from backend.families.declaration import (
    IMPL_STABILITY_AI,
    FamilyDeclaration,
    OriginalTextEncoder,
    PredictionFacts,
)
from backend.families.sdxl.activations import SDXL_ACTIVATIONS
from backend.families.sdxl.detection import CLIP_L_PREFIX, DETECTION, OPEN_CLIP_G_PREFIX

SDXL = FamilyDeclaration(
    name="sdxl",
    label="SDXL",
    implementation="backend.families.sdxl.family",
    commands={"lora": "sdxl_train_network", "finetune": "sdxl_train", "dreambooth": "sdxl_train",
              "textual_inversion": "sdxl_train_textual_inversion", "leco": "sdxl_train_leco"},
    embedding_keys=("clip_l", "clip_g"),
    activations=SDXL_ACTIVATIONS,
    epsilon=PredictionFacts("sdxl_base_v1-0", "stable-diffusion-xl-v1-base", 1024, "sdxl"),
    text_encoder_widths=(768, 1280),  # CLIP ViT-L, OpenCLIP ViT-bigG
    cross_attention_width=2048,
    text_encoder_folders=("text_encoder", "text_encoder_2"),
    tokenizer_folders=("tokenizer", "tokenizer_2"),
    pipeline_class_prefix="StableDiffusionXL",
    original_text_encoders=(OriginalTextEncoder(CLIP_L_PREFIX, "hf"), OriginalTextEncoder(OPEN_CLIP_G_PREFIX, "open_clip")),
    hub_tokenizers=(CLIP_L, CLIP_G),
    configs_folder=Path(__file__).parent / "configs",
    detection=DETECTION,
    text_encoder_output_cache=True,
    weighted_captions=True,
    implied_options={"v2": False},
    network_layout="sdxl",
    network_label="SDXL",
    # Two text encoders and the U-Net by its original (SGM) paths.
    network_key_prefixes=("lora_te1_", "lora_te2_", "lora_unet_input_blocks_", "lora_unet_middle_block_",
                          "lora_unet_output_blocks_"),
    lora_implementation=IMPL_STABILITY_AI,
    own_options=("vae",),  # sd-scripts' --vae: a VAE file of its own replaces the model's (models/vae_file.py)
    replaceable_parts={"vae": "vae"},
)

DECLARATIONS = (SDXL,)
