"""CogVideoX 1.0 text-to-video: the torch-free facts (finetrainers' --model_name cogvideox).

One model type for both released 1.0 sizes, 2B and 5B: they share every class, the VAE architecture, T5 v1.1
XXL and its tokenizer (226 tokens). They differ in the transformer (2B: 30 heads x 64, 30 blocks, sinusoidal
3D positions; 5B: 48 heads x 64, 42 blocks, 3D RoPE), the VAE's `scaling_factor` (1.15258426 / 0.7) and the
scheduler's `snr_shift_scale` (3.0 / 1.0). Both config sets ship (`configs/README.md`): `cogvideox-5b` (finetrainers'
default model, with RoPE) is the declaration's default set, `cogvideox-2b` is named by `CONFIG_SETS`.

Not trained yet (detection refuses their folders with what they are): CogVideoX 1.5 (`patch_size_t` 2: latent
frames padded to pairs, "slice" RoPE, 16-frame VAE chunks) and the image-to-video models (32 input channels,
`CogVideoXImageToVideoPipeline`).

The objective is not flow matching: finetrainers trains CogVideoX on its DDPM schedule (v-prediction, zero
terminal SNR, the SNR shift), family.py.
"""

from pathlib import Path

from backend.families.cogvideox.detection import DETECTION, NAME
from backend.families.declaration import FamilyDeclaration, HubTokenizer, PredictionFacts

IMPL_COGVIDEOX = "https://github.com/THUDM/CogVideo"
CONFIG_SETS = {"2B": "cogvideox-2b", "5B": "cogvideox-5b"}

COGVIDEOX = FamilyDeclaration(
    name=NAME,
    label="CogVideoX",
    implementation="backend.families.cogvideox.family",
    commands={"video": "train_video"},
    # Trained on 720 x 480 videos of 49 frames (the transformer's sample_width/height 90 x 60 latents).
    epsilon=PredictionFacts("cogvideox", "cogvideox-t2v", 480, CONFIG_SETS["5B"]),
    text_encoder_widths=(4096,),  # T5 v1.1 XXL
    cross_attention_width=4096,  # the transformer's text_embed_dim
    denoiser_folder="transformer",
    text_encoder_folders=("text_encoder",),
    tokenizer_folders=("tokenizer",),
    hub_tokenizers=(HubTokenizer("google/t5-v1_1-xxl", kind="t5"),),  # what the repos' tokenizer/ holds
    pipeline_class_prefix="CogVideoX",  # detection refuses the CogVideoX pipelines other than CogVideoXPipeline
    configs_folder=Path(__file__).parent / "configs",
    detection=DETECTION,
    objective="ddpm",  # video commands never take sd-scripts' DDPM options (families.commands_where: image only)
    network_layout="cogvideox",
    network_label="CogVideoX",
    checkpoint_implementation=IMPL_COGVIDEOX,
    # It predicts v, but the video command runs without --v_parameterization, from which modelspec's
    # prediction_type is written: left out rather than written as "epsilon".
    records_prediction_type=False,
    video_model_name="cogvideox",
    implied_options={"model_name": "cogvideox"},  # the GUI's model type sets --model_name
    temporal_compression=4,  # AutoencoderKLCogVideoX: 4x in time (the first frame alone), 8x in space
    spatial_compression=8,
)

DECLARATIONS = (COGVIDEOX,)
