"""Options of `train_video`, finetrainers' flags (a-r-r-o-w/finetrainers after v0.2.0, see
backend/options/finetrainers_flags.py) with finetrainers' names, types, defaults and choices.

Names the image commands already declare with the same meaning (seed, output_dir,
gradient_accumulation_steps, ...) are shared: their declarations list VIDEO_COMMANDS too, and where
finetrainers' default differs the image default stands (tests/options/test_video_options.py lists
those differences). Ranges stricter than finetrainers' parser carry `range_reason`: finetrainers
fails later on the value too, or the value is harmful. finetrainers flags left out here (control
training, torch.compile, attention providers, ...) are refused as "not implemented" by names.py.
"""

from backend.messages import msg
from backend.options.finetrainers_flags import IMAGE_MODEL_NAMES, MODEL_NAMES
from backend.options.schema import VIDEO_COMMANDS, Option, declare_all

# finetrainers' --model_name values less its image models (cogview4, flux), which are refused with the reason.
VIDEO_MODEL_NAMES = tuple(name for name in MODEL_NAMES if name not in IMAGE_MODEL_NAMES)
DTYPES = ("bf16", "fp16", "fp32", "float8_e4m3fn", "float8_e5m2")
OPTIMIZERS = ("adam", "adamw", "adam-bnb", "adamw-bnb", "adam-bnb-8bit", "adamw-bnb-8bit")
FLOW_WEIGHTING_SCHEMES = ("sigma_sqrt", "logit_normal", "mode", "cosmap", "none")
LAYERWISE_SKIP_DEFAULT = (
    "patch_embed", "pos_embed", "x_embedder", "context_embedder", "^proj_in$", "^proj_out$", "norm",
)  # fmt: skip
LORA_TARGET_DEFAULT = "(transformer_blocks|single_transformer_blocks).*(to_q|to_k|to_v|to_out.0)"

_V = {"commands": VIDEO_COMMANDS}


def _dtype_reason() -> str:
    return msg(
        "options.range_reason.video_dtype",
        "finetrainers looks the name up in its table of bf16, fp16, fp32, float8_e4m3fn and float8_e5m2 "
        "and fails (KeyError) on any other",
    )


def _dtype(name: str, component: str) -> Option:
    return Option(
        name, "str", "bf16", choices=DTYPES, group="model", range_reason=_dtype_reason(), **_V,
        help=f"Data type the {component} is loaded and run in: bf16 (default), fp16, fp32, or float8_e4m3fn / "
        "float8_e5m2 (storage only, for memory).",
    )  # fmt: skip


def _component_id(name: str, component: str, more: str = "") -> Option:
    return Option(
        name, "path", None, group="model", **_V,
        help=f"Folder of a diffusers {component} to use instead of the one in --pretrained_model_name_or_path. "
        f"{more}Nothing is downloaded. Default: the model's own.",
    )


def _degree(name: str, what: str) -> Option:
    return Option(
        name, "int", 1, group="advanced", **_V,
        help=f"Degree of {what}, one of finetrainers' parallel settings. This trainer trains on one GPU: values "
        "other than 1 are refused before training. Default 1.",
    )


_model = [
    Option(
        "model_name", "str", None, choices=VIDEO_MODEL_NAMES, required=True, group="model", **_V,
        range_reason=msg(
            "options.range_reason.model_name",
            "train_video trains the video families; finetrainers' image models cogview4 and flux are not "
            "video models (FLUX.1 trains with flux_train_network and flux_train)",
        ),
        help="Which video model family --pretrained_model_name_or_path is: ltx_video (LTX-Video), wan (Wan 2.1), "
        "hunyuan_video (HunyuanVideo) or cogvideox (CogVideoX). Required.",
    ),
    Option(
        "revision", "str", None, group="model", **_V,
        help="Branch, tag or commit of a Hugging Face model repository. Nothing is downloaded here, so it only "
        "applies to a model already in --cache_dir. Default: none.",
    ),
    Option(
        "variant", "str", None, group="model", **_V,
        help="Weight file variant to load from the diffusers folders, e.g. fp16 for "
        "diffusion_pytorch_model.fp16.safetensors. Default: none (the plain files).",
    ),
    Option(
        "cache_dir", "path", None, group="model", **_V,
        help="Hugging Face cache folder to look models up in. Nothing is downloaded. Default: none.",
    ),
    _component_id("tokenizer_id", "tokenizer"),
    _component_id("tokenizer_2_id", "second tokenizer"),
    _component_id("tokenizer_3_id", "third tokenizer"),
    _component_id("text_encoder_id", "text encoder"),
    _component_id("text_encoder_2_id", "second text encoder"),
    _component_id("text_encoder_3_id", "third text encoder"),
    _component_id("transformer_id", "transformer", "For Wan, LTX-Video and HunyuanVideo also a single "
                  ".safetensors file in the original names (as ComfyUI keeps it), read with the model's config. "),
    _component_id("vae_id", "VAE"),
    _dtype("text_encoder_dtype", "text encoder"),
    _dtype("text_encoder_2_dtype", "second text encoder"),
    _dtype("text_encoder_3_dtype", "third text encoder"),
    _dtype("transformer_dtype", "transformer"),
    _dtype("vae_dtype", "VAE"),
    Option(
        "layerwise_upcasting_modules", "str_list", (), choices=("transformer",), group="advanced", **_V,
        help="Modules whose weights are stored in --layerwise_upcasting_storage_dtype (fp8) and upcast layer "
        "by layer for computing: transformer. Saves memory; LoRA training only. Default: none.",
    ),
    Option(
        "layerwise_upcasting_storage_dtype", "str", "float8_e4m3fn", choices=("float8_e4m3fn", "float8_e5m2"),
        group="advanced", **_V,
        help="The fp8 storage type of --layerwise_upcasting_modules. Default float8_e4m3fn.",
    ),
    Option(
        "layerwise_upcasting_skip_modules_pattern", "str_list", LAYERWISE_SKIP_DEFAULT, group="advanced", **_V,
        help="Regular expressions of module names kept in full precision under layerwise upcasting "
        "(embeddings, projections, norms lose too much in fp8). Default: patch_embed pos_embed x_embedder "
        "context_embedder ^proj_in$ ^proj_out$ norm.",
    ),
]

_data = [
    Option(
        "dataset_shuffle_buffer_size", "int", 1, minimum=1, group="dataset", **_V,
        range_reason=msg(
            "options.range_reason.dataset_shuffle_buffer_size",
            "finetrainers refuses a buffer smaller than 1 (ValueError)",
        ),
        help="Number of samples held for shuffling the data order; 1 (default) keeps the dataset order.",
    ),
    Option(
        "enable_precomputation", "bool", False, group="dataset", **_V,
        help="Encode the videos (VAE latents) and captions (text conditions) once before training and train "
        "from the stored results, so the VAE and text encoders are not in memory while training. Default: off.",
    ),
    Option(
        "precomputation_items", "int", 512, minimum=1, group="dataset", **_V,
        range_reason=msg(
            "options.range_reason.precomputation_items",
            "finetrainers refuses fewer than 1 item (ValueError)",
        ),
        help="How many samples are precomputed in one go under --enable_precomputation. Default 512.",
    ),
    Option(
        "precomputation_dir", "path", None, group="dataset", **_V,
        help="Folder for the precomputed latents and conditions. Files still matching their clip, caption and "
        "model are reused by later runs; the others are computed again. Default: output_dir/precomputed.",
    ),
    Option(
        "precomputation_once", "bool", False, group="dataset", **_V,
        help="Precompute the whole dataset before the first step instead of --precomputation_items at a time "
        "as training needs them. Default: off.",
    ),
    Option(
        "precomputation_reuse", "bool", False, group="dataset", **_V,
        help="finetrainers: reuse the precomputed files of an earlier run instead of recomputing them. Here files "
        "are always reused while they match their clip, caption and model, and recomputed when not, so this "
        "changes nothing. Default: off.",
    ),
    Option(
        "dataloader_num_workers", "int", 0, minimum=0, group="dataset", **_V,
        range_reason=msg(
            "options.range_reason.dataloader_num_workers",
            "torch's DataLoader refuses a negative number of workers (ValueError)",
        ),
        help="Worker processes that decode videos while the GPU trains; 0 (default) decodes in the training "
        "process.",
    ),
    Option(
        "pin_memory", "bool", False, group="dataset", **_V,
        help="Load batches into page-locked memory for faster copies to the GPU. Default: off.",
    ),
]

# finetrainers v0.0.x's data and run flags (finetrainers_flags.TAKEN_FROM_V0_0): still taken, so its
# tutorials' commands run; v0.2's --dataset_config JSON describes the same data (backend/video/preflight.py).
_v0_0 = [
    Option(
        "data_root", "path", None, group="dataset", **_V,
        help="The training data folder (finetrainers v0.0.x): prompts.txt and videos.txt (one caption / one "
        "video path per line, paths relative to the folder), or videos and images with same-name .txt "
        "captions; with --dataset_file, the folder its paths are relative to.",
    ),
    Option(
        "dataset_file", "path", None, group="dataset", **_V,
        help="A CSV, JSON or JSONL table of the training videos, with --video_column and --caption_column. "
        "Default: none (the --data_root layouts).",
    ),
    Option(
        "video_column", "str", "video", group="dataset", **_V,
        help="The video column of --dataset_file, or the file of video paths in --data_root (videos.txt is "
        "found by itself). Default video.",
    ),
    Option(
        "caption_column", "str", "text", group="dataset", **_V,
        help="The caption column of --dataset_file, or the file of captions in --data_root (prompts.txt is "
        "found by itself). Default text.",
    ),
    Option(
        "id_token", "str", None, group="dataset", **_V,
        help="A trigger word put in front of every caption (with a space). Default: none.",
    ),
    Option(
        "video_resolution_buckets", "str_list", (), group="dataset", **_V,
        help="The clip sizes trained, as FRAMESxHEIGHTxWIDTH (e.g. 49x512x768 81x480x832): each video goes to the "
        "bucket with the most frames it has, then the nearest aspect ratio. Frame counts must suit the VAE "
        "(1 + 8k for LTX-Video, 1 + 4k for the others). Default: finetrainers' 49-frame buckets the model takes.",
    ),
    Option(
        "image_resolution_buckets", "str_list", (), group="dataset", **_V,
        help="Sizes for images (one-frame clips), as HEIGHTxWIDTH. Default: the video buckets' sizes.",
    ),
    Option(
        "video_reshape_mode", "str", "center", choices=("center", "random", "none"), group="dataset", **_V,
        range_reason=msg(
            "options.range_reason.video_reshape_mode",
            "finetrainers' other values (bicubic, ...) stretch the frames; here none stretches",
        ),
        help="How a clip is fitted to its bucket: center (default: resized to cover it, the middle kept), "
        "random (a random crop per epoch), none (stretched to the bucket's size, as finetrainers does by "
        "default).",
    ),
    Option(
        "caption_dropout_p", "float", 0.0, minimum=0, maximum=1, group="dataset", **_V,
        range_reason=msg("options.range_reason.caption_dropout_p", "a probability: between 0 and 1"),
        help="Chance that a step trains a clip with an empty caption (helps classifier-free guidance). "
        "Default 0.",
    ),
    Option(
        "caption_dropout_technique", "str", "empty", choices=("empty",), group="dataset", **_V,
        range_reason=msg(
            "options.range_reason.caption_dropout_technique",
            "zero (zeroed text embeddings) is not implemented here; empty trains on the empty caption's encoding",
        ),
        help="How a caption is dropped: empty (the empty caption). Default empty.",
    ),
    Option(
        "precompute_conditions", "bool", False, group="dataset", **_V,
        help="Encode the clips (VAE latents) and captions (text conditions) once before training (finetrainers "
        "v0.0.x; --enable_precomputation is the same). The VAE and text encoders then leave the GPU.",
    ),
    Option(
        "train_epochs", "int", None, minimum=1, group="basic", **_V,
        range_reason=msg("options.range_reason.train_epochs", "0 epochs trains nothing"),
        help="Train this many passes over the clips instead of --train_steps (finetrainers v0.0.x); a "
        "--train_steps given too wins, as there. Default: none (--train_steps counts).",
    ),
    Option(
        "scale_lr", "bool", False, group="basic", **_V,
        help="Multiply --lr by the gradient accumulation steps, the batch size and the number of processes. "
        "Default: off.",
    ),
    Option(
        "use_8bit_bnb", "bool", False, group="basic", **_V,
        help="Keep the optimizer's state in 8 bits (bitsandbytes; finetrainers v0.0.x; --optimizer "
        "adamw-bnb-8bit is the same). Default: off.",
    ),
    Option(
        "validation_prompts", "str", None, group="samples", **_V,
        help="Prompts of the validation videos, separated by --validation_separator; each may end in "
        "@@@FRAMESxHEIGHTxWIDTH (default: the largest training bucket). Written as mp4 under output_dir/sample.",
    ),
    Option(
        "validation_separator", "str", ":::", group="samples", **_V,
        help="What separates the prompts of --validation_prompts. Default :::.",
    ),
    Option(
        "num_validation_videos", "int", 1, minimum=1, group="samples", **_V,
        range_reason=msg("options.range_reason.num_validation_videos", "at least one video per prompt"),
        help="Videos per validation prompt (different seeds). Default 1.",
    ),
    Option(
        "validation_epochs", "int", None, minimum=1, group="samples", **_V,
        range_reason=msg("options.range_reason.validation_epochs", "the epoch is divided by it"),
        help="Also make the validation videos after every this many epochs. Default: none.",
    ),
]

_flow = [
    Option(
        "flow_resolution_shifting", "bool", False, group="advanced", **_V,
        help="Shift the noise levels by the number of latent tokens (more tokens: more noise), between "
        "--flow_base_shift at --flow_base_seq_len and --flow_max_shift at --flow_max_seq_len. Default: off.",
    ),
    Option(
        "flow_base_seq_len", "int", 256, group="advanced", **_V,
        help="Token count that gets --flow_base_shift under --flow_resolution_shifting. Default 256.",
    ),
    Option(
        "flow_max_seq_len", "int", 4096, group="advanced", **_V,
        help="Token count that gets --flow_max_shift under --flow_resolution_shifting. Default 4096.",
    ),
    Option(
        "flow_base_shift", "float", 0.5, group="advanced", **_V,
        help="Shift at --flow_base_seq_len tokens under --flow_resolution_shifting. Default 0.5.",
    ),
    Option(
        "flow_max_shift", "float", 1.15, group="advanced", **_V,
        help="Shift at --flow_max_seq_len tokens under --flow_resolution_shifting. Default 1.15.",
    ),
    Option(
        "flow_shift", "float", 1.0, group="advanced", **_V,
        help="Shift the sampled noise levels towards high noise: sigma' = s x sigma / (1 + (s - 1) x sigma). "
        "1.0 (default) is no shift; higher values help high-resolution training.",
    ),
    Option(
        "flow_weighting_scheme", "str", "none", choices=FLOW_WEIGHTING_SCHEMES, group="advanced", **_V,
        help="How the noise levels are drawn and the loss weighted: none (default, uniform), logit_normal "
        "(--flow_logit_mean, --flow_logit_std), mode (--flow_mode_scale), cosmap, sigma_sqrt.",
    ),
    Option(
        "flow_logit_mean", "float", 0.0, group="advanced", **_V,
        help="Mean of the logit_normal weighting scheme. Default 0.0.",
    ),
    Option(
        "flow_logit_std", "float", 1.0, group="advanced", **_V,
        help="Standard deviation of the logit_normal weighting scheme. Default 1.0.",
    ),
    Option(
        "flow_mode_scale", "float", 1.29, group="advanced", **_V,
        help="Scale of the mode weighting scheme. Default 1.29.",
    ),
]

_training = [
    Option(
        "training_type", "str", None, choices=("lora", "full-finetune"), required=True, group="basic", **_V,
        range_reason=msg(
            "options.range_reason.training_type",
            "finetrainers' control-lora and control-full-finetune (training with control videos such as canny "
            "edges) are not implemented by this trainer",
        ),
        help="lora: train a LoRA, saved as pytorch_lora_weights.safetensors (diffusers/PEFT keys); "
        "full-finetune: train the whole transformer, saved as a diffusers transformer folder. Required.",
    ),
    Option(
        "batch_size", "int", 1, minimum=1, group="basic", **_V,
        range_reason=msg(
            "options.range_reason.batch_size", "torch's DataLoader refuses a batch size below 1 (ValueError)"
        ),
        help="Videos per batch. Default 1.",
    ),
    Option(
        "train_steps", "int", 1000, minimum=1, group="basic", **_V,
        range_reason=msg(
            "options.range_reason.train_steps",
            "0 steps trains nothing, and the untrained weights would be saved as the result",
        ),
        help="Number of optimizer steps to train. Default 1000.",
    ),
    Option(
        "rank", "int", 64, minimum=1, group="network", **_V,
        range_reason=msg("options.range_reason.rank", "finetrainers refuses a rank below 1 (AssertionError)"),
        help="LoRA rank (dimension of the low-rank matrices): larger learns more detail and makes bigger files. "
        "Default 64.",
    ),
    Option(
        "lora_alpha", "int", 64, minimum=1, group="network", **_V,
        range_reason=msg(
            "options.range_reason.lora_alpha", "finetrainers refuses a lora_alpha below 1 (AssertionError)"
        ),
        help="LoRA alpha: the LoRA output is scaled by lora_alpha / rank. Default 64 (scale 1 at rank 64).",
    ),
    Option(
        "target_modules", "str_list", (LORA_TARGET_DEFAULT,), group="network", **_V,
        help="The transformer modules that get a LoRA, as PEFT reads them: one value is a regular expression "
        "matched against the whole module name; several values are module name endings. Default: the "
        "attention projections of transformer_blocks.",
    ),
    Option(
        "checkpointing_steps", "int", 500, minimum=1, group="saving", **_V,
        range_reason=msg(
            "options.range_reason.checkpointing_steps",
            "finetrainers divides the step by it (ZeroDivisionError at 0)",
        ),
        help="Save a checkpoint (weights and training state, resumable) every this many steps. Default 500.",
    ),
    Option(
        "checkpointing_limit", "int", None, minimum=1, group="saving", **_V,
        range_reason=msg(
            "options.range_reason.checkpointing_limit",
            "keeping no checkpoint at all would delete each one as soon as it is written",
        ),
        help="Keep at most this many checkpoints, deleting the oldest. Default: keep all.",
    ),
    Option(
        "resume_from_checkpoint", "str", None, group="saving", **_V,
        help="Resume a stopped run: a step number whose checkpoint exists in --output_dir, or latest. Default: "
        "start fresh.",
    ),
    Option(
        "enable_slicing", "bool", False, group="advanced", **_V,
        help="Run the VAE one video of the batch at a time: less memory, same result. Default: off.",
    ),
    Option(
        "enable_tiling", "bool", False, group="advanced", **_V,
        help="Run the VAE on overlapping spatial tiles: much less memory for large frames. Default: off.",
    ),
]

_optimizer = [
    Option(
        "optimizer", "str", "adam", choices=OPTIMIZERS, group="basic", **_V,
        help="adam (default) or adamw from torch; adam-bnb, adamw-bnb and their -8bit forms from bitsandbytes "
        "(8-bit states use less memory).",
    ),
    Option("lr", "float", 1e-4, group="basic", **_V, help="Learning rate (after warmup). Default 1e-4."),
    Option(
        "lr_num_cycles", "int", 1, group="basic", **_V,
        help="Number of cosine cycles (cosine) or hard restarts (cosine_with_restarts). Default 1.",
    ),
    Option(
        "lr_power", "float", 1.0, group="basic", **_V,
        help="Power of the polynomial schedule (1.0, default, is linear).",
    ),
    Option("beta1", "float", 0.9, group="advanced", **_V, help="Adam beta1 (first moment decay). Default 0.9."),
    Option(
        "beta2", "float", 0.95, group="advanced", **_V, help="Adam beta2 (second moment decay). Default 0.95."
    ),
    Option(
        "beta3", "float", None, group="advanced", **_V,
        help="Third beta of optimizers that have one; adam and adamw have none. Default: none.",
    ),
    Option(
        "weight_decay", "float", 1e-4, group="advanced", **_V,
        help="Weight decay (decoupled for adamw). Default 1e-4.",
    ),
    Option(
        "epsilon", "float", 1e-8, group="advanced", **_V,
        help="Adam epsilon, added to the denominator for stability. Default 1e-8.",
    ),
]

_validation = [
    Option(
        "validation_dataset_file", "path", None, group="samples", **_V,
        help="CSV, JSON or JSONL file of validation prompts (caption column; optional height, width, num_frames, "
        "num_inference_steps, frame_rate, and image_path: the first frame, for LTX-Video): a video is generated "
        "for each and saved as mp4. Default: no validation.",
    ),
    Option(
        "validation_steps", "int", 500, minimum=1, group="samples", **_V,
        range_reason=msg(
            "options.range_reason.validation_steps",
            "finetrainers divides the step by it (ZeroDivisionError at 0)",
        ),
        help="Generate the validation videos every this many steps. Default 500.",
    ),
    Option(
        "enable_model_cpu_offload", "bool", False, group="samples", **_V,
        help="Keep the models in CPU memory during validation and move each to the GPU only while it runs. "
        "Default: off.",
    ),
]

_misc = [
    Option(
        "tracker_name", "str", "finetrainers", group="logging", **_V,
        help="Project name under which the training metrics are logged. Default finetrainers.",
    ),
    Option(
        "logging_steps", "int", 1, minimum=1, group="logging", **_V,
        range_reason=msg(
            "options.range_reason.logging_steps", "the step is divided by it (ZeroDivisionError at 0)"
        ),
        help="Log the training metrics every this many steps. Default 1.",
    ),
    Option(
        "report_to", "str", "none", choices=("none", "wandb"), group="logging", **_V,
        help="Where the metrics go besides the log: none (default) or wandb (needs the wandb package).",
    ),
    Option(
        "init_timeout", "int", 300, group="advanced", **_V,
        help="Seconds to wait for the processes of a multi-GPU run to start. Default 300.",
    ),
    Option(
        "nccl_timeout", "int", 600, group="advanced", **_V,
        help="Seconds a multi-GPU communication may take before the run fails. Default 600.",
    ),
    Option(
        "allow_tf32", "bool", False, group="advanced", **_V,
        help="Allow TF32 matrix multiplication on Ampere and newer GPUs: faster, slightly less precise. "
        "Default: off.",
    ),
    Option(
        "push_to_hub", "bool", False, group="saving", **_V,
        help="Upload the trained weights to the Hugging Face Hub repository --hub_model_id when training ends. "
        "Default: off.",
    ),
    Option(
        "hub_token", "str", None, secret=True, group="saving", **_V,
        help="Hugging Face token for --push_to_hub. A secret: never written to presets, saved configs or "
        "exported commands. Default: the saved login.",
    ),
    Option(
        "hub_model_id", "str", None, group="saving", **_V,
        help="Hub repository (user/name) that --push_to_hub uploads to. Default: the output folder's name.",
    ),
    Option(
        "parallel_backend", "str", "accelerate", choices=("accelerate", "ptd"), group="advanced", **_V,
        help="finetrainers' distributed backend: accelerate (default) or ptd (torch.distributed).",
    ),
    _degree("pp_degree", "pipeline parallelism"),
    _degree("dp_degree", "data parallelism (model replicas)"),
    _degree("dp_shards", "data-parallel sharding (FSDP shards)"),
    _degree("cp_degree", "context parallelism"),
    _degree("tp_degree", "tensor parallelism"),
]

declare_all([*_model, *_data, *_v0_0, *_flow, *_training, *_optimizer, *_validation, *_misc])
