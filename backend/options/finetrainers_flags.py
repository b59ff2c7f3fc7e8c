"""Every flag that finetrainers' `train.py` accepts, by argparse group, with its parser type and default.

Taken from a-r-r-o-w/finetrainers at commit f476c371 (2025-06-04, after v0.2.0):
finetrainers/args.py (`_add_*_arguments`, `AttentionProviderArgs`), trainer/sft_trainer/config.py
(`SFTLowRankConfig`, registered for --training_type lora) and trainer/control_trainer/config.py
(`ControlLowRankConfig` / `ControlFullRankConfig`, for the control-* training types). Defaults are the
argparse defaults (what a run gets when the flag is left out), which differ in places from the
`BaseArgs` docstring (e.g. --optimizer adam, --lr_warmup_steps 500, --report_to none).

The parsers use it to tell a finetrainers flag that train_video does not implement apart from a typo
(as sd_scripts_flags.py does for sd-scripts), and tests/options/test_video_options.py checks the
train_video declarations against these types, defaults and choices. `REMOVED` names the flags of
finetrainers v0.0.x that v0.1.0 replaced, so an old command line is told what took their place.
This module stays torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class FinetrainersFlag:
    """One argparse argument of finetrainers: `kind` in our option kinds (nargs="+" strings: str_list)."""

    kind: str
    default: Any = None
    choices: tuple[Any, ...] | None = None
    required: bool = False


def _f(kind: str, default: Any = None, choices: tuple[Any, ...] | None = None, required: bool = False) -> FinetrainersFlag:
    return FinetrainersFlag(kind, default, choices, required)


_DTYPE = _f("str", "bf16")  # mapped through args._DTYPE_MAP: bf16, fp16, fp32, float8_e4m3fn, float8_e5m2
_TARGET_SFT = "(transformer_blocks|single_transformer_blocks).*(to_q|to_k|to_v|to_out.0)"
_TARGET_CONTROL = "(transformer_blocks|single_transformer_blocks).*(to_q|to_k|to_v|to_out.0|ff.net.0.proj|ff.net.2)"
# The training types with their own flag groups (finetrainers registers them by --training_type).
TRAINING_TYPES = ("lora", "full-finetune", "control-lora", "control-full-finetune")
MODEL_NAMES = ("cogvideox", "cogview4", "flux", "hunyuan_video", "ltx_video", "wan")
IMAGE_MODEL_NAMES = ("cogview4", "flux")  # trained by the image commands here (FLUX.1) or not at all

# Group name -> flag name -> parser facts, in finetrainers' `_add_args` order.
GROUPS: dict[str, dict[str, FinetrainersFlag]] = {
    "parallel": {
        "parallel_backend": _f("str", "accelerate", ("accelerate", "ptd")),
        "pp_degree": _f("int", 1), "dp_degree": _f("int", 1), "dp_shards": _f("int", 1),
        "cp_degree": _f("int", 1), "tp_degree": _f("int", 1),
    },
    "model": {
        "model_name": _f("str", None, MODEL_NAMES, required=True),
        "pretrained_model_name_or_path": _f("str", None, required=True),
        "revision": _f("str"), "variant": _f("str"), "cache_dir": _f("str"),
        "tokenizer_id": _f("str"), "tokenizer_2_id": _f("str"), "tokenizer_3_id": _f("str"),
        "text_encoder_id": _f("str"), "text_encoder_2_id": _f("str"), "text_encoder_3_id": _f("str"),
        "transformer_id": _f("str"), "vae_id": _f("str"),
        "text_encoder_dtype": _DTYPE, "text_encoder_2_dtype": _DTYPE, "text_encoder_3_dtype": _DTYPE,
        "transformer_dtype": _DTYPE, "vae_dtype": _DTYPE,
        "layerwise_upcasting_modules": _f("str_list", (), ("transformer",)),
        "layerwise_upcasting_storage_dtype": _f("str", "float8_e4m3fn", ("float8_e4m3fn", "float8_e5m2")),
        "layerwise_upcasting_skip_modules_pattern": _f(
            "str_list", ("patch_embed", "pos_embed", "x_embedder", "context_embedder", "^proj_in$", "^proj_out$", "norm")
        ),
    },
    "dataset": {
        "dataset_config": _f("str", None, required=True),
        "dataset_shuffle_buffer_size": _f("int", 1),
        "enable_precomputation": _f("bool", False),
        "precomputation_items": _f("int", 512),
        "precomputation_dir": _f("str"),
        "precomputation_once": _f("bool", False),
        "precomputation_reuse": _f("bool", False),
    },
    "dataloader": {"dataloader_num_workers": _f("int", 0), "pin_memory": _f("bool", False)},
    "diffusion": {
        "flow_resolution_shifting": _f("bool", False),
        "flow_base_seq_len": _f("int", 256), "flow_max_seq_len": _f("int", 4096),
        "flow_base_shift": _f("float", 0.5), "flow_max_shift": _f("float", 1.15), "flow_shift": _f("float", 1.0),
        "flow_weighting_scheme": _f("str", "none", ("sigma_sqrt", "logit_normal", "mode", "cosmap", "none")),
        "flow_logit_mean": _f("float", 0.0), "flow_logit_std": _f("float", 1.0), "flow_mode_scale": _f("float", 1.29),
    },
    "training": {
        "training_type": _f("str", None, TRAINING_TYPES, required=True),
        "seed": _f("int"), "batch_size": _f("int", 1), "train_steps": _f("int", 1000),
        "max_data_samples": _f("int", 2**64), "gradient_accumulation_steps": _f("int", 1),
        "gradient_checkpointing": _f("bool", False), "checkpointing_steps": _f("int", 500),
        "checkpointing_limit": _f("int"), "resume_from_checkpoint": _f("str"),
        "enable_slicing": _f("bool", False), "enable_tiling": _f("bool", False),
    },
    "optimizer": {
        "lr": _f("float", 1e-4), "lr_scheduler": _f("str", "constant"), "lr_warmup_steps": _f("int", 500),
        "lr_num_cycles": _f("int", 1), "lr_power": _f("float", 1.0),
        # type=str.lower, so "AdamW" is taken too.
        "optimizer": _f("str", "adam", ("adam", "adamw", "adam-bnb", "adamw-bnb", "adam-bnb-8bit", "adamw-bnb-8bit")),
        "beta1": _f("float", 0.9), "beta2": _f("float", 0.95), "beta3": _f("float"),
        "weight_decay": _f("float", 1e-4), "epsilon": _f("float", 1e-8), "max_grad_norm": _f("float", 1.0),
    },
    "validation": {
        "validation_dataset_file": _f("str"), "validation_steps": _f("int", 500),
        "enable_model_cpu_offload": _f("bool", False),
    },
    "miscellaneous": {
        "tracker_name": _f("str", "finetrainers"), "push_to_hub": _f("bool", False), "hub_token": _f("str"),
        "hub_model_id": _f("str"), "output_dir": _f("str", "finetrainers-training"), "logging_dir": _f("str", "logs"),
        "logging_steps": _f("int", 1), "init_timeout": _f("int", 300), "nccl_timeout": _f("int", 600),
        "report_to": _f("str", "none", ("none", "wandb")), "verbose": _f("int", 0, (0, 1, 2, 3)),
    },
    "torch_config": {
        "compile_modules": _f("str_list", ()), "compile_scopes": _f("str_list"),
        "allow_tf32": _f("bool", False),
        "float32_matmul_precision": _f("str", "highest", ("highest", "high", "medium")),
    },
    "helper": {"list_models": _f("bool", False)},  # prints the model names and exits
    "attention_provider": {"attn_provider_training": _f("str_list"), "attn_provider_inference": _f("str_list")},
    # SFTLowRankConfig (lora) and ControlLowRankConfig (control-lora; its own --target_modules default).
    "low_rank": {"rank": _f("int", 64), "lora_alpha": _f("int", 64), "target_modules": _f("str_list", (_TARGET_SFT,))},
    "control": {
        "control_type": _f("str", "canny", ("canny", "custom", "none")),
        "train_qk_norm": _f("bool", False),
        "frame_conditioning_type": _f("str", "index", ("index", "prefix", "random", "first_and_last", "full")),
        "frame_conditioning_index": _f("int", 0),
        "frame_conditioning_concatenate_mask": _f("bool", False),
    },
}  # fmt: skip
CONTROL_TARGET_MODULES_DEFAULT = (_TARGET_CONTROL,)

# Flags of finetrainers v0.0.x (tag v0.0.1, 2025-02-24) that v0.1.0 removed but this trainer still takes:
# tutorials and scripts written for v0.0.x use them, and they describe the data directly on the command line
# (backend/options/defs/video.py declares them; backend/data/video reads their layouts).
TAKEN_FROM_V0_0 = frozenset({
    "data_root", "dataset_file", "video_column", "caption_column", "id_token", "image_resolution_buckets",
    "video_resolution_buckets", "video_reshape_mode", "caption_dropout_p", "caption_dropout_technique",
    "precompute_conditions", "train_epochs", "scale_lr", "use_8bit_bnb", "validation_prompts",
    "validation_separator", "num_validation_videos", "validation_epochs",
})  # fmt: skip

# Flags of finetrainers v0.0.x (tag v0.0.1, 2025-02-24) that v0.1.0 removed -> what replaced them.
_DATASET_JSON = "--dataset_config (a JSON file whose \"datasets\" entries hold it)"
REMOVED: dict[str, str] = {
    "remove_common_llm_caption_prefixes": _DATASET_JSON,
    "validation_images": "--validation_dataset_file", "validation_videos": "--validation_dataset_file",
    "validation_frame_rate": "--validation_dataset_file",
}  # fmt: skip


@cache
def finetrainers_flags() -> frozenset[str]:
    """The flag names (without "--") that finetrainers' train.py accepts at the snapshot."""
    return frozenset(name for flags in GROUPS.values() for name in flags)


def finetrainers_flag(name: str) -> FinetrainersFlag | None:
    """finetrainers' parser facts for `name`, or None when its train.py has no such flag."""
    return next((flags[name] for flags in GROUPS.values() if name in flags), None)
