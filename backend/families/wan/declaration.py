"""Wan 2.1 text-to-video: the torch-free facts (finetrainers' --model_name wan).

One model type for both released sizes, 1.3B and 14B: they share every class, the VAE, UMT5-XXL and the
tokenizer, and differ only in the transformer's width and depth (its config tells them apart). Both config
sets ship (`configs/README.md` says where their values come from): `wan2.1-t2v-1.3b` is the declaration's
default set, `wan2.1-t2v-14b` is named by `CONFIG_SETS`.

Image-to-video (Wan2.1-I2V-14B-480P/720P, FLF2V) would be a second declaration here sharing this
implementation: `WanImageToVideoPipeline` folders add `image_encoder/` (CLIP ViT-H vision) and
`image_processor/`, and the transformer (`image_dim` 1280, 36 input channels) takes the first frame's
VAE latents and a frame mask concatenated to the noisy latents plus the CLIP image states as
`encoder_hidden_states_image` (finetrainers' WanImageConditioningLatentEncodeProcessor /
WanImageEncodeProcessor). Detection refuses those folders until then.
"""

from pathlib import Path

from backend.families.declaration import FamilyDeclaration, HubTokenizer, PredictionFacts
from backend.families.wan.detection import DETECTION

IMPL_WAN = "https://github.com/Wan-Video/Wan2.1"
CONFIG_SETS = {"1.3B": "wan2.1-t2v-1.3b", "14B": "wan2.1-t2v-14b"}

WAN = FamilyDeclaration(
    name="wan",
    label="Wan 2.1 T2V",
    implementation="backend.families.wan.family",
    commands={"video": "train_video"},
    # Trained at 480p (832 x 480) and 720p (14B); the short side of the 480p videos.
    epsilon=PredictionFacts("wan2.1", "wan2.1-t2v", 480, CONFIG_SETS["1.3B"]),
    text_encoder_widths=(4096,),  # UMT5-XXL
    cross_attention_width=4096,  # the transformer's text_dim
    denoiser_folder="transformer",
    text_encoder_folders=("text_encoder",),
    tokenizer_folders=("tokenizer",),
    hub_tokenizers=(HubTokenizer("google/umt5-xxl", kind="t5"),),  # what the repos' tokenizer/ holds
    pipeline_class_prefix="Wan",  # detection refuses the Wan pipelines other than WanPipeline
    configs_folder=Path(__file__).parent / "configs",
    detection=DETECTION,
    objective="flow_matching",
    network_layout="wan",
    network_label="Wan 2.1",
    checkpoint_implementation=IMPL_WAN,
    records_prediction_type=False,
    video_model_name="wan",
    single_file_transformer=True,
    implied_options={"model_name": "wan"},  # the GUI's model type selector sets finetrainers' --model_name
    temporal_compression=4,  # AutoencoderKLWan: 4x in time (the first frame alone), 8x in space
    spatial_compression=8,
)

DECLARATIONS = (WAN,)
