"""SD 3.5 Medium and Large: the torch-free facts (sd-scripts' sd3_train_network / sd3_train).

Two model types share one implementation and one network layout: Medium is the MMDiT-X (its first
x blocks have a second self-attention, `attn2`), Large the plain MMDiT with more and wider blocks.
sd-scripts tells them by the file (`x_block.attn2` keys, sd3_utils.analyze_state_dict_state); so do we.
Single files hold the transformer and the autoencoder, and may hold the three text encoders
(`text_encoders.clip_l.`, `clip_g.`, `t5xxl.`); --clip_l, --clip_g, --t5xxl and --vae give them (or
replace them) as files of their own.
"""

from pathlib import Path

from backend.families.clip import CLIP_G, CLIP_L
from backend.families.declaration import (
    IMPL_DIFFUSERS,
    IMPL_STABILITY_AI,
    FamilyDeclaration,
    HubTokenizer,
    PredictionFacts,
)
from backend.families.sd3.detection import DETECTION

T5_XXL = HubTokenizer("google/t5-v1_1-xxl", kind="t5")  # strategy_sd3.T5_XXL_TOKENIZER_ID

IMPLEMENTATION = "backend.families.sd3.family"
COMMANDS = {"lora": "sd3_train_network", "finetune": "sd3_train", "dreambooth": "sd3_train"}
SHARED = {
    "implementation": IMPLEMENTATION,
    "commands": COMMANDS,
    "text_encoder_widths": (768, 1280, 4096),  # CLIP-L, CLIP-G (both with projection), T5 v1.1 XXL
    "cross_attention_width": 4096,  # joint_attention_dim: CLIP-L+G padded to the T5 width
    "denoiser_folder": "transformer",
    "text_encoder_folders": ("text_encoder", "text_encoder_2", "text_encoder_3"),
    "tokenizer_folders": ("tokenizer", "tokenizer_2", "tokenizer_3"),
    "pipeline_class_prefix": "StableDiffusion3",
    "hub_tokenizers": (CLIP_L, CLIP_G, T5_XXL),  # sd-scripts' strategy_sd3 tokenizer ids
    "configs_folder": Path(__file__).parent / "configs",
    "detection": DETECTION,
    "text_encoder_output_cache": True,
    "network_layout": "sd3",
    "network_label": "SD 3.5",
    # sd-scripts' lora_sd3 names: the MMDiT by its SAI module names; CLIP-L lora_te1_, CLIP-G lora_te2_, T5 lora_te3_.
    "network_key_prefixes": ("lora_unet_joint_blocks_",),
    "lora_implementation": IMPL_DIFFUSERS,  # sai_model_spec: an SD3 LoRA is neither SDXL nor a checkpoint
    "checkpoint_implementation": IMPL_STABILITY_AI,
    "records_prediction_type": False,
    # sd-scripts' sd3_train_network update_metadata.
    "metadata_options": ("apply_lg_attn_mask", "apply_t5_attn_mask", "weighting_scheme", "logit_mean", "logit_std",
                         "mode_scale"),
    "objective": "flow_matching",
    # sd-scripts' add_sd3_training_arguments we implement (the others are reported as not implemented).
    "own_options": ("clip_l", "clip_g", "t5xxl", "vae", "t5xxl_max_token_length", "apply_lg_attn_mask",
                    "apply_t5_attn_mask", "training_shift", "min_timestep", "max_timestep", "clip_l_dropout_rate",
                    "clip_g_dropout_rate", "t5_dropout_rate", "pos_emb_random_crop_rate", "enable_scaled_pos_embed",
                    "blocks_to_swap"),
    # Parts a single file may lack, each given by a flag of its own, and the folder it replaces.
    "part_flags": {"clip_l": "text_encoder", "clip_g": "text_encoder_2", "t5xxl": "text_encoder_3", "vae": "vae"},
    "parts_may_be_inside": True,
}

SD3_MEDIUM = FamilyDeclaration(
    name="sd3_medium",
    label="SD 3.5 Medium",
    epsilon=PredictionFacts("5-medium", "stable-diffusion-3-5-medium", 1024, "sd3-medium"),
    **SHARED,
)

SD3_LARGE = FamilyDeclaration(
    name="sd3_large",
    label="SD 3.5 Large",
    epsilon=PredictionFacts("5-large", "stable-diffusion-3-5-large", 1024, "sd3-large"),
    **SHARED,
)

DECLARATIONS = (SD3_MEDIUM, SD3_LARGE)
