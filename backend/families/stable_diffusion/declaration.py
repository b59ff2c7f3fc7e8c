"""SD 1.x and SD 2.x (512 epsilon, 768 v-prediction): the torch-free facts."""

from pathlib import Path

from backend.families.clip import CLIP_L
from backend.families.declaration import FamilyDeclaration, HubTokenizer, OriginalTextEncoder, PredictionFacts
from backend.families.stable_diffusion.activations import SD15_ACTIVATIONS
from backend.families.stable_diffusion.detection import CLIP_L_PREFIX, DETECTION, OPEN_CLIP_H_PREFIX

IMPLEMENTATION = "backend.families.stable_diffusion.family"
COMMANDS = {"lora": "train_network", "finetune": "fine_tune", "dreambooth": "train_db",
            "textual_inversion": "train_textual_inversion", "leco": "train_leco"}
# One text encoder (lora_te_) and the U-Net by its diffusers paths.
NETWORK_KEYS = {"network_layout": "sd", "network_label": "SD 1.x/2.x", "network_key_prefixes": (
    "lora_te_", "lora_unet_down_blocks_", "lora_unet_mid_block_", "lora_unet_up_blocks_")}
SHARED = {"implementation": IMPLEMENTATION, "commands": COMMANDS, "pipeline_class_prefix": "StableDiffusion",
          "configs_folder": Path(__file__).parent / "configs", "detection": DETECTION, "weighted_captions": True,
          "embedding_keys": ("emb_params",),
          # sd-scripts' --vae: a VAE file of its own replaces the model's (backend/models/vae_file.py).
          "own_options": ("vae",), "replaceable_parts": {"vae": "vae"}, "activations": SD15_ACTIVATIONS, **NETWORK_KEYS}

SD1 = FamilyDeclaration(
    name="sd1",
    label="SD 1.x",
    epsilon=PredictionFacts("sd_v1", "stable-diffusion-v1", 512, "sd15"),
    text_encoder_widths=(768,),  # CLIP ViT-L
    cross_attention_width=768,
    original_text_encoders=(OriginalTextEncoder(CLIP_L_PREFIX, "hf"),),
    hub_tokenizers=(CLIP_L,),
    implied_options={"v2": False},
    **SHARED,
)

SD2 = FamilyDeclaration(
    name="sd2",
    label="SD 2.x",
    epsilon=PredictionFacts("sd_v2", "stable-diffusion-v2-512", 512, "sd2"),
    v_prediction=PredictionFacts("sd_v2_v", "stable-diffusion-v2-768-v", 768, "sd2-v"),
    text_encoder_widths=(1024,),  # OpenCLIP ViT-H
    cross_attention_width=1024,
    original_text_encoders=(OriginalTextEncoder(OPEN_CLIP_H_PREFIX, "open_clip", keeps_unused_parts=True),),
    hub_tokenizers=(HubTokenizer("stabilityai/stable-diffusion-2", "tokenizer", pad_with_bang=True),),
    implied_options={"v2": True},
    **SHARED,
)

DECLARATIONS = (SD1, SD2)
