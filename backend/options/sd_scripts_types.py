"""What sd-scripts' own parsers accept for each flag and each dataset-config key: type and choices.

Recorded from kohya-ss/sd-scripts at commit 48d368fa (the commit of `sd_scripts_flags.py`):
the `add_argument` calls of library/train_util.py, train_network.py, fine_tune.py, sdxl_train.py,
library/sdxl_train_util.py, custom_train_functions.py, deepspeed_utils.py, sai_model_spec.py,
utils.py and config_util.py, flux_train_network.py, flux_train.py, library/flux_train_utils.py,
sd3_train.py and library/sd3_train_utils.py, and the voluptuous schema of config_util.ConfigSanitizer.

sd-scripts' argparse has no numeric ranges at all: any int parses for an int flag, and the value is
judged (if ever) at run time, by an assert, an exception or by doing nothing. A range or choice list
of ours that is stricter therefore needs a reason written next to the option (`Option.range_reason`,
`DatasetKey.range_reason`); tests/options/test_sd_scripts_ranges.py walks these tables and checks it.

Kinds use our names (backend/options/values.py): "bool" is a store_true flag, "str_list" and
"float_list" are `nargs="*"`, "path" is argparse's `type=Path`.
"""

from __future__ import annotations

from typing import Any

# Each flag of sd_scripts_flags.GROUPS by the type its argparse declaration gives it.
KINDS: dict[str, tuple[str, ...]] = {
    "bool": (
        "alpha_mask", "apply_lg_attn_mask", "apply_t5_attn_mask", "async_upload", "blockwise_fused_optimizers",
        "bucket_no_upscale", "cache_info", "cache_latents", "cache_latents_to_disk", "cache_text_encoder_outputs",
        "cache_text_encoder_outputs_to_disk", "color_aug", "console_log_simple", "cpu_offload_checkpointing",
        "ddp_gradient_as_bucket_view", "ddp_static_graph", "debiased_estimation_loss", "debug_dataset", "deepspeed",
        "diffusers_xformers", "dim_from_weights", "disable_mmap_load_safetensors", "enable_bucket",
        "enable_scaled_pos_embed", "enable_wildcard", "flip_aug", "fp16_master_weights_and_gradients", "fp8_base",
        "fp8_base_unet", "full_bf16", "full_fp16", "fused_backward_pass", "gradient_checkpointing", "highvram",
        "ip_noise_gamma_random_strength", "log_config", "lowram", "masked_loss", "mem_eff_attn", "mem_eff_save",
        "network_train_text_encoder_only", "network_train_unet_only", "no_half_vae", "no_metadata", "no_token_padding",
        "noise_offset_random_strength", "output_config", "persistent_data_loader_workers", "random_crop",
        "resume_from_huggingface", "sample_at_first", "save_clip", "save_state", "save_state_on_train_end",
        "save_state_to_huggingface", "save_t5xxl", "scale_v_pred_loss_like_noise_pred", "sdpa", "shuffle_caption",
        "skip_cache_check", "skip_latents_validity_check", "skip_until_initial_step", "split_mode", "torch_compile",
        "train_t5xxl", "train_text_encoder", "use_8bit_adam", "use_lion_optimizer", "use_safetensors",
        "use_object_template", "use_style_template", "use_t5xxl_cache_only", "v2", "v_parameterization", "weighted_captions", "xformers", "zero3_init_flag",
        "zero3_save_16bit_model", "zero_terminal_snr",
    ),
    "int": (
        "blocks_to_swap", "bucket_reso_steps", "caption_dropout_every_n_epochs", "clip_skip", "dataset_repeats",
        "ddp_timeout", "double_blocks_to_swap", "fused_optimizer_groups", "gradient_accumulation_steps",
        "initial_epoch", "initial_step", "keep_tokens", "lr_scheduler_num_cycles", "lr_scheduler_timescale",
        "max_bucket_reso", "max_data_loader_n_workers", "max_timestep", "max_token_length", "max_train_epochs",
        "max_train_steps", "max_validation_steps", "max_denoising_steps", "min_bucket_reso", "min_timestep", "multires_noise_iterations",
        "network_dim", "num_last_block_to_freeze", "num_vectors_per_token", "sample_every_n_epochs", "sample_every_n_steps",
        "save_every_n_epochs", "save_every_n_steps", "save_last_n_epochs", "save_last_n_epochs_state",
        "save_last_n_steps", "save_last_n_steps_state", "save_n_epoch_ratio", "seed", "single_blocks_to_swap",
        "stop_text_encoder_training",
        "t5xxl_max_token_length", "text_encoder_batch_size", "token_warmup_min", "train_batch_size",
        "vae_batch_size", "validate_every_n_epochs", "validate_every_n_steps", "validation_seed", "zero_stage",
    ),
    "float": (
        "adaptive_noise_scale", "caption_dropout_rate", "caption_tag_dropout_rate", "clip_g_dropout_rate",
        "clip_l_dropout_rate", "discrete_flow_shift", "guidance_scale", "huber_c", "huber_scale", "ip_noise_gamma",
        "learning_rate", "learning_rate_te", "leco_denoise_guidance_scale", "learning_rate_te1", "learning_rate_te2", "learning_rate_te3",
        "logit_mean", "logit_std", "lr_scheduler_min_lr_ratio", "lr_scheduler_power", "max_grad_norm",
        "min_snr_gamma", "mode_scale", "multires_noise_discount", "network_alpha", "network_dropout",
        "noise_offset", "pos_emb_random_crop_rate", "prior_loss_weight", "scale_weight_norms", "sigmoid_scale",
        "t5_dropout_rate", "token_warmup_step", "training_shift", "unet_lr", "v_pred_like_loss", "validation_split",
    ),
    "int_or_float": ("lr_decay_steps", "lr_warmup_steps"),
    "str": (
        "ae", "block_lr", "caption_extension", "caption_extention", "caption_prefix", "caption_separator",
        "caption_suffix", "clip_g", "clip_l", "conditioning_data_dir", "config_file", "console_log_file",
        "console_log_level", "controlnet_model_name_or_path", "dataset_class", "dynamo_backend",
        "face_crop_aug_range", "huber_schedule", "huggingface_path_in_repo", "huggingface_repo_id",
        "huggingface_repo_type", "huggingface_repo_visibility", "huggingface_token", "in_json", "init_word",
        "keep_tokens_separator", "log_prefix", "log_tracker_config", "log_tracker_name", "log_with", "logging_dir",
        "loss_type", "lr_scheduler", "lr_scheduler_type", "metadata_author", "metadata_description",
        "metadata_is_negative_embedding", "metadata_license", "metadata_merged_from", "metadata_preprocessor",
        "metadata_tags", "metadata_thumbnail", "metadata_title", "metadata_trigger_phrase", "metadata_usage_hint",
        "mixed_precision", "model_prediction_type", "model_type", "network_module", "network_weights",
        "offload_optimizer_device", "offload_optimizer_nvme_path", "offload_param_device",
        "offload_param_nvme_path", "optimizer_type", "output_dir", "output_name", "pretrained_model_name_or_path", "prompts_file",
        "reg_data_dir", "resize_interpolation", "resolution", "resume", "sample_prompts", "sample_sampler",
        "save_model_as", "save_precision", "secondary_separator", "t5xxl", "t5xxl_device", "t5xxl_dtype",
        "timestep_sampling", "token_string", "tokenizer_cache_dir", "train_data_dir", "training_comment", "vae",
        "wandb_api_key", "wandb_run_name", "weighting_scheme", "weights",
    ),
    "path": ("dataset_config",),
    "str_list": ("base_weights", "lr_scheduler_args", "network_args", "optimizer_args"),
    "float_list": ("base_weights_multiplier", "text_encoder_lr"),
}  # fmt: skip

# argparse `choices=` (None, the default where it is listed, left out: it means "not given").
CHOICES: dict[str, tuple[Any, ...]] = {
    "console_log_level": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "dynamo_backend": (
        "eager", "aot_eager", "inductor", "aot_ts_nvfuser", "nvprims_nvfuser", "cudagraphs", "ofi", "fx2trt",
        "onnxrt", "tensort", "ipex", "tvm",
    ),
    "huber_schedule": ("constant", "exponential", "snr"),
    "log_with": ("tensorboard", "wandb", "all"),
    "loss_type": ("l1", "l2", "huber", "smooth_l1"),
    "max_token_length": (150, 225),
    "mixed_precision": ("no", "fp16", "bf16"),
    "model_prediction_type": ("raw", "additive", "sigma_scaled"),
    "model_type": ("flux", "chroma"),
    "offload_optimizer_device": ("cpu", "nvme"),
    "offload_param_device": ("cpu", "nvme"),
    "resize_interpolation": ("lanczos", "nearest", "bilinear", "linear", "bicubic", "cubic", "area"),
    "sample_sampler": (
        "ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
        "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a",
    ),
    "save_model_as": ("ckpt", "safetensors", "diffusers", "diffusers_safetensors"),  # fine_tune, sdxl_train
    "save_precision": ("float", "fp16", "bf16"),
    "timestep_sampling": ("sigma", "uniform", "sigmoid", "shift", "flux_shift"),
    "weighting_scheme": ("sigma_sqrt", "logit_normal", "mode", "cosmap", "none", "uniform"),
    "zero_stage": (0, 1, 2, 3),
}  # fmt: skip

# Where one script declares a flag differently from the shared declaration.
CHOICES_BY_COMMAND: dict[str, dict[str, tuple[Any, ...]]] = {
    "train_network": {"save_model_as": ("ckpt", "pt", "safetensors")},
    "sdxl_train_network": {"save_model_as": ("ckpt", "pt", "safetensors")},
    "flux_train_network": {"save_model_as": ("ckpt", "pt", "safetensors")},
    "sd3_train_network": {"save_model_as": ("ckpt", "pt", "safetensors")},
    "train_textual_inversion": {"save_model_as": ("ckpt", "pt", "safetensors")},
    "sdxl_train_textual_inversion": {"save_model_as": ("ckpt", "pt", "safetensors")},
}

# The dataset config (`--dataset_config`): config_util.ConfigSanitizer's voluptuous types, no ranges.
# "int_or_float" is voluptuous `Any(float, int)`; "float" is a bare `float`, which refuses an
# integer such as 0 (ours accepts it). resize_interpolation is a plain str in the schema; the
# dataset checks it at run time against utils.validate_interpolation_fn, which also knows "box".
DATASET_KINDS: dict[str, str] = {
    **dict.fromkeys((
        "num_repeats", "keep_tokens", "token_warmup_min", "caption_dropout_every_n_epochs", "batch_size",
        "bucket_reso_steps", "max_bucket_reso", "min_bucket_reso", "validation_seed",
    ), "int"),
    **dict.fromkeys(("token_warmup_step", "caption_dropout_rate", "caption_tag_dropout_rate"), "int_or_float"),
    **dict.fromkeys(("validation_split", "network_multiplier"), "float"),
    **dict.fromkeys((
        "color_aug", "flip_aug", "random_crop", "shuffle_caption", "enable_wildcard", "cache_info", "is_reg",
        "alpha_mask", "bucket_no_upscale", "enable_bucket",
    ), "bool"),
    **dict.fromkeys((
        "keep_tokens_separator", "secondary_separator", "caption_separator", "caption_prefix", "caption_suffix",
        "resize_interpolation", "caption_extension", "class_tokens", "image_dir", "metadata_file",
        "conditioning_data_dir",
    ), "str"),
    "face_crop_aug_range": "float_pair",
    "resolution": "resolution",
    "custom_attributes": "table",
}  # fmt: skip
DATASET_CHOICES: dict[str, tuple[Any, ...]] = {
    "resize_interpolation": ("lanczos", "nearest", "bilinear", "linear", "bicubic", "cubic", "area", "box"),
}


def flag_kind(flag: str) -> str | None:
    """The kind sd-scripts' argparse gives `flag` (None when sd-scripts has no such flag)."""
    return next((kind for kind, flags in KINDS.items() if flag in flags), None)


def flag_choices(flag: str, command: str) -> tuple[Any, ...] | None:
    """The choices `command`'s sd-scripts parser allows for `flag` (None: any value of its type)."""
    return CHOICES_BY_COMMAND.get(command, {}).get(flag, CHOICES.get(flag))
