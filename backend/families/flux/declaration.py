"""FLUX.1 dev and schnell: the torch-free facts (sd-scripts' flux_train_network / flux_train).

Two model types share one implementation and one network layout, as SD 1.x and 2.x do: dev is
guidance-distilled (its transformer embeds the guidance scale), schnell is timestep-distilled (no
guidance embedding). sd-scripts tells them by the file (`guidance_in` keys); so do we.
"""

from pathlib import Path

from backend.families.clip import CLIP_L
from backend.families.declaration import FamilyDeclaration, HubTokenizer, PredictionFacts
from backend.families.flux.detection import DETECTION

IMPL_FLUX = "https://github.com/black-forest-labs/flux"
T5_XXL = HubTokenizer("google/t5-v1_1-xxl", kind="t5")  # sd-scripts' T5_XXL_TOKENIZER_ID
IMPLEMENTATION = "backend.families.flux.family"
COMMANDS = {"lora": "flux_train_network", "finetune": "flux_train", "dreambooth": "flux_train"}
SHARED = {
    "implementation": IMPLEMENTATION,
    "commands": COMMANDS,
    "text_encoder_widths": (768, 4096),  # CLIP ViT-L (pooled only), T5 v1.1 XXL
    "cross_attention_width": 4096,  # joint_attention_dim: the T5 width
    "denoiser_folder": "transformer",
    "text_encoder_folders": ("text_encoder", "text_encoder_2"),
    "tokenizer_folders": ("tokenizer", "tokenizer_2"),
    "pipeline_class_prefix": "Flux",
    "hub_tokenizers": (CLIP_L, T5_XXL),
    "configs_folder": Path(__file__).parent / "configs",
    "detection": DETECTION,
    "text_encoder_output_cache": True,
    "network_layout": "flux",
    "network_label": "FLUX.1",
    # sd-scripts' lora_flux names: the transformer by its BFL module names; CLIP-L lora_te1_, T5 lora_te3_.
    "network_key_prefixes": ("lora_unet_double_blocks_", "lora_unet_single_blocks_", "lora_te1_", "lora_te3_"),
    "lora_implementation": IMPL_FLUX,
    "checkpoint_implementation": IMPL_FLUX,
    "records_prediction_type": False,
    # sd-scripts' flux_train_network update_metadata.
    "metadata_options": ("model_type", "apply_t5_attn_mask", "weighting_scheme", "logit_mean", "logit_std",
                         "mode_scale", "guidance_scale", "timestep_sampling", "sigmoid_scale",
                         "model_prediction_type", "discrete_flow_shift"),
    "objective": "flow_matching",
    # sd-scripts' add_flux_train_arguments: the separately stored CLIP-L, T5-XXL and autoencoder, the
    # T5 settings, the guidance the dev transformer embeds and sd-scripts' flux|chroma switch.
    "own_options": (
        "clip_l", "t5xxl", "ae", "model_type", "t5xxl_max_token_length", "apply_t5_attn_mask", "guidance_scale",
        "blocks_to_swap",  # for LoRA training only (backend/options/defs/own_options.py)
    ),
    # sd-scripts' flux_* flags for the parts a BFL transformer file lacks, and the folders they replace.
    "part_flags": {"clip_l": "text_encoder", "t5xxl": "text_encoder_2", "ae": "vae"},
    # sd-scripts' --model_type: flux (its default) for FLUX.1; chroma is the Chroma family's.
    "implied_options": {"model_type": "flux"},
}

FLUX_DEV = FamilyDeclaration(
    name="flux_dev",
    label="FLUX.1 [dev]",
    epsilon=PredictionFacts("flux1", "flux-1-dev", 1024, "flux-dev"),
    **SHARED,
)

FLUX_SCHNELL = FamilyDeclaration(
    name="flux_schnell",
    label="FLUX.1 [schnell]",
    epsilon=PredictionFacts("flux1", "flux-1-schnell", 1024, "flux-schnell"),
    **SHARED,
)

DECLARATIONS = (FLUX_DEV, FLUX_SCHNELL)
