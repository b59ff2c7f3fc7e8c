"""LTX-Video 0.9.x: the torch-free facts (finetrainers' `--model_name ltx_video`).

The model (Lightricks/LTX-Video, diffusers `LTXPipeline`): `LTXVideoTransformer3DModel` (2B, 28 blocks, patch
size 1: one token per latent pixel of each latent frame), `AutoencoderKLLTXVideo` (128 latent channels, 32x
spatial and 8x temporal compression: F frames -> (F - 1) / 8 + 1 latent frames, the first frame alone), and
the T5 v1.1 XXL encoder (128 tokens, its padding masked in the transformer's cross-attention). Trained with
finetrainers' flow matching (backend/families/ltx_video/family.py). Folders only: the original single files
(`ltx-video-2b-v0.9.1.safetensors`: transformer and VAE in Lightricks' names) are refused with a pointer to the
diffusers folder (detection.py).

Image-to-video (`LTXImageToVideoPipeline`, first-frame conditioning) is a later step: it is the same
declaration and transformer (the pipeline classes are accepted by detection), trained by giving the first
latent frame a small sigma (finetrainers' `first_frame_conditioning_p`) -- see family.py.
"""

from pathlib import Path

from backend.families.declaration import IMPL_DIFFUSERS, FamilyDeclaration, HubTokenizer, PredictionFacts
from backend.families.ltx_video.detection import DETECTION

NAME = "ltx_video"
CONFIG_SET = "ltx-video"
T5_TOKENIZER = HubTokenizer("Lightricks/LTX-Video", subfolder="tokenizer", kind="t5")

LTX_VIDEO = FamilyDeclaration(
    name=NAME,
    label="LTX-Video",
    implementation="backend.families.ltx_video.family",
    commands={"video": "train_video"},
    # 512 (x 768) is LTX-Video's training resolution: the short side.
    epsilon=PredictionFacts("ltx-video", "ltx-video", 512, CONFIG_SET),
    text_encoder_widths=(4096,),  # T5 v1.1 XXL
    cross_attention_width=4096,  # caption_channels: the transformer projects T5's 4096 to its 2048
    denoiser_folder="transformer",
    text_encoder_folders=("text_encoder",),
    tokenizer_folders=("tokenizer",),
    pipeline_class_prefix="LTX",
    hub_tokenizers=(T5_TOKENIZER,),
    configs_folder=Path(__file__).parent / "configs",
    detection=DETECTION,
    objective="flow_matching",
    network_layout="ltx_video",
    network_label="LTX-Video",
    # PEFT/diffusers LoRA files (pytorch_lora_weights.safetensors) name the transformer's modules.
    network_key_prefixes=("transformer.transformer_blocks.",),
    lora_implementation=IMPL_DIFFUSERS,
    checkpoint_implementation=IMPL_DIFFUSERS,
    records_prediction_type=False,
    video_model_name="ltx_video",
    implied_options={"model_name": "ltx_video"},  # the GUI's model type selector sets finetrainers' --model_name
    temporal_compression=8,
    spatial_compression=32,
    image_to_video=True,
    single_file_transformer=True,
)

DECLARATIONS = (LTX_VIDEO,)
