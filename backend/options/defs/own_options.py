"""Options that families name as their own: today sd-scripts' add_flux_train_arguments flags.

Each option's commands are those of the families listing it in `FamilyDeclaration.own_options`
(`commands_taking`), so nothing here names a family. The flow-matching flags of the same sd-scripts
function are in flow_matching.py (every flow-matching family reads them); --controlnet_model_name_or_path
is an sd-scripts flag not implemented here (sd_scripts_flags.py tells the user so).
"""

from backend import families
from backend.families import DECLARATIONS
from backend.messages import msg
from backend.options.schema import Option, commands_taking, declare, declare_all

# sd-scripts' --model_type values (flux, chroma): those the families on its FLUX.1 scripts imply.
MODEL_TYPES = tuple(dict.fromkeys(str(d.implied_options["model_type"]) for d in DECLARATIONS
                                  if "model_type" in d.implied_options))


def _own(option: Option) -> Option:
    """`option` for the commands of the families naming it among their own options."""
    return Option(**{**option.__dict__, "commands": commands_taking(option.name)})


def _dropout(name: str, encoder: str, range_reason: str) -> Option:
    """SD 3.5's --clip_l_dropout_rate, --clip_g_dropout_rate, --t5_dropout_rate (families/sd3/text_dropout.py)."""
    return Option(
        f"{name}_dropout_rate", "float", 0.0, minimum=0, maximum=1, group="advanced", range_reason=range_reason,
        help=f"SD 3.5: chance that an image's {encoder} output is replaced by zeros in a training step (its token "
        f"states and its part of the pooled vector; sd-scripts' --{name}_dropout_rate), drawn for each image and "
        "each encoder on its own, so the model learns to work without that encoder. Applied to cached text-encoder "
        "outputs too (the cache itself keeps them whole). Default 0 (off).",
    )


declare_all(
    _own(option)
    for option in [
        Option(
            "clip_l", "path", None, group="model",
            help="The CLIP-L text encoder as its own file (.safetensors or .sft, e.g. clip_l.safetensors), "
            "when the model file holds the transformer alone, as Black Forest Labs' flux1-dev.safetensors "
            "does (SD 3.5: when the model file lacks it, or to replace it). Not needed when the model is a diffusers "
            "folder, which holds its text encoders. Chroma has no CLIP-L: leave it empty.",
        ),
        Option(
            "t5xxl", "path", None, group="model",
            help="The T5-XXL text encoder as its own file (.safetensors or .sft, e.g. t5xxl_fp16.safetensors), "
            "when the model file holds the transformer alone (SD 3.5: when the model file lacks it, or to replace "
            "it). An fp8 file (t5xxl_fp8_e4m3fn) saves memory. "
            "Not needed when the model is a diffusers folder.",
        ),
        Option(
            "ae", "path", None, group="model",
            help="The autoencoder (VAE) as its own file (.safetensors or .sft, e.g. ae.safetensors), when the "
            "model file holds the transformer alone. Not needed when the model is a diffusers folder.",
        ),
        Option(
            "clip_g", "path", None, group="model",
            help="SD 3.5's CLIP-G text encoder as its own file (e.g. clip_g.safetensors), when the model file does "
            "not hold it (files named ..._incl_clips do), or to replace the one it holds. Not needed for a "
            "diffusers folder.",
        ),
        Option(
            "vae", "path", None, group="model",
            help="A VAE of its own, used instead of the model's (sd-scripts' --vae): a file (.safetensors, .ckpt, "
            ".bin; original/LDM names as A1111 and ComfyUI VAE files have, a whole checkpoint whose VAE is taken, or "
            "diffusers names) or a diffusers VAE folder on this machine. Latents are encoded and samples decoded "
            "with it, and a saved fine-tune holds it. SD 1.x/2.x and SDXL: e.g. vae-ft-mse-840000-ema-pruned or the "
            "SDXL fp16-fix VAE. SD 3.5: also when the model file does not hold its VAE. Empty: the model's own.",
        ),
        Option(
            "apply_lg_attn_mask", "bool", False, group="advanced",
            help="SD 3.5: run CLIP-L and CLIP-G with the padding mask, so their outputs ignore the padding after the "
            "caption (sd-scripts' --apply_lg_attn_mask). The MMDiT still sees every token. Default off.",
        ),
        Option(
            "training_shift", "float", 1.0, minimum=0, group="advanced",
            range_reason=msg(
                "options.range_reason.training_shift",
                "a shift of the noise levels: s x u / (1 + (s - 1) x u) leaves [0, 1] for a negative s"
            ),
            help="SD 3.5: shift of the training noise levels drawn by weighting_scheme (u' = s x u / (1 + (s - 1) x "
            "u)): above 1 trains more at high noise (composition), below 1 at low noise (details). Default 1.0 "
            "(no shift), sd-scripts' default.",
        ),
        _dropout("clip_l", "CLIP-L", msg("options.range_reason.clip_l_dropout_rate",
                                          "a chance per image: 0 never drops CLIP-L's output, 1 always does")),
        _dropout("clip_g", "CLIP-G", msg("options.range_reason.clip_g_dropout_rate",
                                          "a chance per image: 0 never drops CLIP-G's output, 1 always does")),
        _dropout("t5", "T5-XXL", msg("options.range_reason.t5_dropout_rate",
                                     "a chance per image: 0 never drops T5-XXL's output, 1 always does")),
        Option(
            "pos_emb_random_crop_rate", "float", 0.0, minimum=0, maximum=1, group="advanced",
            range_reason=msg("options.range_reason.pos_emb_random_crop_rate",
                             "a chance per image: 0 always takes the centred window, 1 always a random one"),
            help="SD 3.5: chance that an image's window of the transformer's positional-embedding table is taken "
            "at a random place instead of the centre in a training step (sd-scripts' --pos_emb_random_crop_rate), "
            "so the model learns its content at other positions. Drawn for each image. sd-scripts meant it for "
            "SD 3.5 Medium only. Samples always use the centre. Default 0 (off).",
        ),
        Option(
            "enable_scaled_pos_embed", "bool", False, group="advanced",
            help="SD 3.5: for multi-resolution training, a positional-embedding table per dataset resolution, "
            "scaled so each resolution covers the middle of the range the model knows, instead of windows of the "
            "model's one table (sd-scripts' --enable_scaled_pos_embed). sd-scripts meant it for SD 3.5 Medium "
            "only. Samples made while training use these tables too (as in sd-scripts); the saved model is unchanged and "
            "generates with its own table elsewhere. Default off.",
        ),
        Option(
            "model_type", "str", "flux", choices=MODEL_TYPES, group="model",
            help="sd-scripts' switch between FLUX.1 (flux, the default) and Chroma (chroma). It must match the "
            "model file: a Chroma file with flux, or a FLUX.1 file with chroma, is refused. Whether a FLUX.1 "
            "model is dev or schnell is read from the model file.",
        ),
        Option(
            "t5xxl_max_token_length", "int", None, group="advanced",
            help="Longest caption in T5-XXL tokens; longer captions are cut off, shorter ones padded. Empty "
            "(default): 512 for FLUX.1 dev and Chroma, 256 for schnell and SD 3.5, as sd-scripts sets them. Lower values save "
            "memory and time when captions are short.",
        ),
        Option(
            "apply_t5_attn_mask", "bool", False, group="advanced",
            help="Mask the padding after the caption in T5-XXL and in the transformer's joint attention, so "
            "only the caption's tokens are attended to. FLUX.1 was trained without the mask; a LoRA trained "
            "with it should be used with it. Chroma requires it (as in sd-scripts). SD 3.5: T5-XXL alone is masked, "
            "as sd-scripts does. Default off.",
        ),
        Option(
            "guidance_scale", "float", 3.5, group="advanced",
            help="The guidance value given to FLUX.1 dev's transformer while training (dev is guidance-"
            "distilled and takes it as an input). Default 3.5 (sd-scripts'); many LoRA guides use 1.0. "
            "schnell has no guidance input and ignores it; so does Chroma, whose approximator always gets "
            "0 (sd-scripts' guide sets --guidance_scale 0.0 for it).",
        ),
    ]
)


# --blocks_to_swap (backend/training/block_swap.py): the network and fine-tune commands of the families that
# list it. A fine-tune needs --fused_backward_pass with it (finetune_preflight.py), as in sd-scripts.
declare(Option(
    "blocks_to_swap", "int", None, group="advanced", minimum=0,
    commands=tuple(dict.fromkeys(d.commands[kind] for d in families.DECLARATIONS if "blocks_to_swap" in d.own_options
                                 for kind in ("lora", "finetune") if kind in d.commands)),
    range_reason=msg(
        "options.range_reason.blocks_to_swap",
        "a negative number of blocks means nothing (sd-scripts would compute negative block counts from it)",
    ),
    help="Keep this many of the transformer's blocks in system RAM and move each to the GPU only while it runs "
    "(sd-scripts' --blocks_to_swap): less GPU memory, slower steps, more RAM. For FLUX.1 N counts double blocks: "
    "N // 2 double blocks and twice the rest in single blocks are swapped; at most 35. For SD 3.5 the last N joint "
    "blocks are swapped; at most 36 (Large) or 22 (Medium). Empty or 0: off. Needs a CUDA GPU; a full fine-tune "
    "needs --fused_backward_pass with it. See docs/performance.md.",
))
