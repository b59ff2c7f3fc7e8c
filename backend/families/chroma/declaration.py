"""Chroma: the torch-free facts (sd-scripts' flux_train_network / flux_train with --model_type chroma).

Chroma is FLUX.1 [schnell] pruned and retrained: no CLIP-L (T5-XXL alone conditions it, always with its
padding masked), no guidance embedding, and no per-block modulation Linears: one `distilled_guidance_layer`
computes every block's modulation from the timestep. sd-scripts trains it with the FLUX.1 scripts and
networks/lora_flux.py, so its LoRA files use FLUX.1's key names for the layers it has (the network layout
is shared; T5 stays `lora_te3_`, as the dummy CLIP-L keeps T5 second in sd-scripts' encoder list). Its
AE and T5-XXL are FLUX.1's files.
"""

from pathlib import Path

from backend.families.chroma.detection import DETECTION, NAME
from backend.families.declaration import FamilyDeclaration, PredictionFacts
from backend.families.flux.declaration import COMMANDS, T5_XXL

IMPL_CHROMA = "https://huggingface.co/lodestones/Chroma"  # sd-scripts' sai_model_spec.IMPL_CHROMA

CHROMA = FamilyDeclaration(
    name=NAME,
    label="Chroma",
    implementation="backend.families.chroma.family",
    commands=COMMANDS,
    # sd-scripts: ss_base_model_version "chroma" (MODEL_VERSION_CHROMA), modelspec.architecture "chroma".
    epsilon=PredictionFacts("chroma", "chroma", 1024, "chroma"),
    text_encoder_widths=(4096,),  # T5 v1.1 XXL
    cross_attention_width=4096,
    denoiser_folder="transformer",
    text_encoder_folders=("text_encoder",),
    tokenizer_folders=("tokenizer",),
    pipeline_class_prefix="Chroma",
    hub_tokenizers=(T5_XXL,),
    configs_folder=Path(__file__).parent / "configs",
    detection=DETECTION,
    text_encoder_output_cache=True,
    # sd-scripts' --model_type chroma chooses it on the FLUX.1 commands (FLUX.1's types imply "flux").
    implied_options={"model_type": NAME},
    network_layout="flux",
    network_label="FLUX.1",  # the layout's label (its first family's): lora_flux's names
    network_key_prefixes=("lora_unet_double_blocks_", "lora_unet_single_blocks_", "lora_te3_"),
    lora_implementation=IMPL_CHROMA,
    checkpoint_implementation=IMPL_CHROMA,
    records_prediction_type=False,
    metadata_options=("model_type", "apply_t5_attn_mask", "weighting_scheme", "logit_mean", "logit_std",
                      "mode_scale", "guidance_scale", "timestep_sampling", "sigmoid_scale",
                      "model_prediction_type", "discrete_flow_shift"),
    objective="flow_matching",
    # FLUX.1's --clip_l and --guidance_scale are no options of Chroma's (sd-scripts ignores CLIP-L; the
    # approximator gets guidance 0): the GUI hides them for it, preflight says they are ignored.
    own_options=("t5xxl", "ae", "model_type", "t5xxl_max_token_length", "apply_t5_attn_mask", "blocks_to_swap"),
    part_flags={"t5xxl": "text_encoder", "ae": "vae"},
)

DECLARATIONS = (CHROMA,)
