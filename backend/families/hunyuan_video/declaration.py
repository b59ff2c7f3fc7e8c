"""HunyuanVideo: the torch-free facts (finetrainers' --model_name hunyuan_video).

The model (hunyuanvideo-community/HunyuanVideo, diffusers `HunyuanVideoPipeline`): a 13B
`HunyuanVideoTransformer3DModel` (20 dual-stream and 40 single-stream blocks, patch (1, 2, 2), a guidance
embedding: the released model is guidance-distilled), `AutoencoderKLHunyuanVideo` (16 latent channels, 4x in
time with the first frame alone, 8x in space, latents scaled by 0.476986), llava-llama-3-8b's `LlamaModel` (the
third-to-last hidden states of a chat-templated prompt, the template's tokens cropped away) and CLIP-L's pooled
output. `configs/README.md` says where the shipped config values come from. Folders only: the original
`mp_rank_00_model_states.pt` / single transformer files are recognised and refused with a pointer to the
diffusers folder (detection.py).
"""

from pathlib import Path

from backend.families.declaration import IMPL_DIFFUSERS, FamilyDeclaration, HubTokenizer, PredictionFacts
from backend.families.hunyuan_video.detection import DETECTION

NAME = "hunyuan_video"
CONFIG_SET = "hunyuan-video"
REPO = "hunyuanvideo-community/HunyuanVideo"

HUNYUAN_VIDEO = FamilyDeclaration(
    name=NAME,
    label="HunyuanVideo",
    implementation="backend.families.hunyuan_video.family",
    commands={"video": "train_video"},
    # Trained up to 720p (1280 x 720); 544 x 960 is the pipeline's documented lighter setting: the short side.
    epsilon=PredictionFacts("hunyuan-video", "hunyuan-video", 720, CONFIG_SET),
    text_encoder_widths=(4096, 768),  # llava-llama-3-8b, CLIP-L
    cross_attention_width=4096,  # text_embed_dim: the token refiner takes Llama's states
    denoiser_folder="transformer",
    text_encoder_folders=("text_encoder", "text_encoder_2"),
    tokenizer_folders=("tokenizer", "tokenizer_2"),
    hub_tokenizers=(HubTokenizer(REPO, subfolder="tokenizer", kind="llama"),
                    HubTokenizer(REPO, subfolder="tokenizer_2")),
    pipeline_class_prefix="HunyuanVideo",  # detection refuses the HunyuanVideo pipelines other than text-to-video
    configs_folder=Path(__file__).parent / "configs",
    detection=DETECTION,
    objective="flow_matching",
    network_layout="hunyuan_video",
    network_label="HunyuanVideo",
    single_file_transformer=True,
    # PEFT/diffusers LoRA files (pytorch_lora_weights.safetensors) name the transformer's modules; the dual-stream
    # blocks' `transformer.transformer_blocks.` are LTX-Video's names too, so the names only HunyuanVideo has tell.
    network_key_prefixes=("transformer.single_transformer_blocks.", "transformer.context_embedder.token_refiner."),
    lora_implementation=IMPL_DIFFUSERS,
    checkpoint_implementation=IMPL_DIFFUSERS,
    records_prediction_type=False,
    video_model_name="hunyuan_video",
    implied_options={"model_name": "hunyuan_video"},  # the GUI's model type sets --model_name
    temporal_compression=4,  # AutoencoderKLHunyuanVideo: 4x in time (the first frame alone), 8x in space
    spatial_compression=8,
)

DECLARATIONS = (HUNYUAN_VIDEO,)
