"""Every flag that sd-scripts' training scripts accept, by argparse group and by script.

Taken from kohya-ss/sd-scripts at commit 48d368fa (2026-02-16): train_network.py (193 flags),
sdxl_train_network.py (196), fine_tune.py (167), sdxl_train.py (176), flux_train_network.py (215),
flux_train.py (194), sd3_train_network.py (218), sd3_train.py (201), train_db.py,
train_textual_inversion.py and sdxl_train_textual_inversion.py (and train_leco.py, sdxl_train_leco.py from
commit 063ef10, which added them), counted as argparse actions of each
script's `setup_parser()` (without --help; the groups below follow its calls and their switches). The parsers use it to tell a flag this trainer
does not implement (yet) apart from a typo, so a config written for sd-scripts gets a precise
message instead of "unknown option". The SD3 scripts are listed although no SD3 command exists
yet, so their flags are named as sd-scripts flags too.
"""

from __future__ import annotations

from functools import cache

# Group name -> flags, in sd-scripts' `setup_parser()` order. Groups that sd-scripts adds only
# with `support_dreambooth=True` are split out ("..._dreambooth").
GROUPS: dict[str, tuple[str, ...]] = {
    "logging": ("console_log_level", "console_log_file", "console_log_simple"),
    "sd_models": ("v2", "v_parameterization", "pretrained_model_name_or_path", "tokenizer_cache_dir"),
    "model_spec": (
        "metadata_title", "metadata_author", "metadata_description", "metadata_license", "metadata_tags",
        "metadata_usage_hint", "metadata_thumbnail", "metadata_merged_from", "metadata_trigger_phrase",
        "metadata_preprocessor", "metadata_is_negative_embedding",
    ),
    "dataset": (
        "train_data_dir", "cache_info", "shuffle_caption", "caption_separator", "caption_extension",
        "caption_extention", "keep_tokens", "keep_tokens_separator", "secondary_separator", "enable_wildcard",
        "caption_prefix", "caption_suffix", "color_aug", "flip_aug", "face_crop_aug_range", "random_crop",
        "debug_dataset", "resolution", "cache_latents", "vae_batch_size", "cache_latents_to_disk",
        "skip_cache_check", "enable_bucket", "min_bucket_reso", "max_bucket_reso", "bucket_reso_steps",
        "bucket_no_upscale", "resize_interpolation", "token_warmup_min", "token_warmup_step", "alpha_mask",
        "dataset_class",
    ),
    # add_dataset_arguments(parser, support_dreambooth, support_caption, support_caption_dropout)'s optional parts
    "dataset_caption_dropout": ("caption_dropout_rate", "caption_dropout_every_n_epochs", "caption_tag_dropout_rate"),
    "dataset_dreambooth": ("reg_data_dir",),
    "dataset_caption": ("in_json", "dataset_repeats"),
    "training": (
        "output_dir", "output_name", "huggingface_repo_id", "huggingface_repo_type", "huggingface_path_in_repo",
        "huggingface_token", "huggingface_repo_visibility", "save_state_to_huggingface",
        "resume_from_huggingface", "async_upload", "save_precision", "save_every_n_epochs", "save_every_n_steps",
        "save_n_epoch_ratio", "save_last_n_epochs", "save_last_n_epochs_state", "save_last_n_steps",
        "save_last_n_steps_state", "save_state", "save_state_on_train_end", "resume", "train_batch_size",
        "max_token_length", "mem_eff_attn", "torch_compile", "dynamo_backend", "xformers", "sdpa", "vae",
        "max_train_steps", "max_train_epochs", "max_data_loader_n_workers", "persistent_data_loader_workers",
        "seed", "gradient_checkpointing", "gradient_accumulation_steps", "mixed_precision", "full_fp16",
        "full_bf16", "fp8_base", "ddp_timeout", "ddp_gradient_as_bucket_view", "ddp_static_graph", "clip_skip",
        "logging_dir", "log_with", "log_prefix", "log_tracker_name", "wandb_run_name", "log_tracker_config",
        "wandb_api_key", "log_config", "noise_offset", "noise_offset_random_strength",
        "multires_noise_iterations", "ip_noise_gamma", "ip_noise_gamma_random_strength",
        "multires_noise_discount", "adaptive_noise_scale", "zero_terminal_snr", "min_timestep", "max_timestep",
        "loss_type", "huber_schedule", "huber_c", "huber_scale", "lowram", "highvram", "sample_every_n_steps",
        "sample_at_first", "sample_every_n_epochs", "sample_prompts", "sample_sampler", "config_file",
        "output_config",
    ),
    "training_dreambooth": ("prior_loss_weight",),
    "masked_loss": ("conditioning_data_dir", "masked_loss"),
    "deepspeed": (
        "deepspeed", "zero_stage", "offload_optimizer_device", "offload_optimizer_nvme_path",
        "offload_param_device", "offload_param_nvme_path", "zero3_init_flag", "zero3_save_16bit_model",
        "fp16_master_weights_and_gradients",
    ),
    "sd_saving": ("save_model_as", "use_safetensors"),
    "optimizer": (
        "optimizer_type", "use_8bit_adam", "use_lion_optimizer", "learning_rate", "max_grad_norm",
        "optimizer_args", "lr_scheduler_type", "lr_scheduler_args", "lr_scheduler", "lr_warmup_steps",
        "lr_decay_steps", "lr_scheduler_num_cycles", "lr_scheduler_power", "fused_backward_pass",
        "lr_scheduler_timescale", "lr_scheduler_min_lr_ratio",
    ),
    "dataset_config": ("dataset_config",),
    "custom_train": (
        "min_snr_gamma", "scale_v_pred_loss_like_noise_pred", "v_pred_like_loss", "debiased_estimation_loss",
    ),
    "custom_train_weighted": ("weighted_captions",),  # add_custom_train_arguments(support_weighted_captions)
    "train_network": (
        "cpu_offload_checkpointing", "no_metadata", "save_model_as", "unet_lr", "text_encoder_lr",
        "fp8_base_unet", "network_weights", "network_module", "network_dim", "network_alpha", "network_dropout",
        "network_args", "network_train_unet_only", "network_train_text_encoder_only", "training_comment",
        "dim_from_weights", "scale_weight_norms", "base_weights", "base_weights_multiplier", "no_half_vae",
        "skip_until_initial_step", "initial_epoch", "initial_step", "validation_seed", "validation_split",
        "validate_every_n_steps", "validate_every_n_epochs", "max_validation_steps",
    ),
    "sdxl": ("cache_text_encoder_outputs", "cache_text_encoder_outputs_to_disk", "disable_mmap_load_safetensors"),
    "fine_tune": ("diffusers_xformers", "train_text_encoder", "learning_rate_te", "no_half_vae"),
    "train_db": ("learning_rate_te", "no_token_padding", "stop_text_encoder_training", "no_half_vae"),
    # train_textual_inversion.py's own (its --save_model_as takes ckpt, pt, safetensors)
    "textual_inversion": (
        "save_model_as", "weights", "num_vectors_per_token", "token_string", "init_word", "use_object_template",
        "use_style_template", "no_half_vae",
    ),
    # sdxl_train_util.add_sdxl_training_arguments(support_text_encoder_caching=False): sdxl_train_textual_inversion
    "sdxl_no_text_cache": ("disable_mmap_load_safetensors",),
    "sdxl_train": (
        "learning_rate_te1", "learning_rate_te2", "diffusers_xformers", "train_text_encoder", "no_half_vae",
        "block_lr", "fused_optimizer_groups",
    ),
    # train_util.add_dit_training_arguments: the flow-matching (DiT) scripts' shared flags.
    "dit_training": (
        "cache_text_encoder_outputs", "cache_text_encoder_outputs_to_disk", "text_encoder_batch_size",
        "disable_mmap_load_safetensors", "weighting_scheme", "logit_mean", "logit_std", "mode_scale",
        "blocks_to_swap",
    ),
    # flux_train_utils.add_flux_train_arguments
    "flux": (
        "clip_l", "t5xxl", "ae", "controlnet_model_name_or_path", "t5xxl_max_token_length", "apply_t5_attn_mask",
        "guidance_scale", "timestep_sampling", "sigmoid_scale", "model_prediction_type", "discrete_flow_shift",
        "model_type",
    ),
    "flux_train_network": ("split_mode",),
    "flux_train": (
        "mem_eff_save", "fused_optimizer_groups", "blockwise_fused_optimizers", "skip_latents_validity_check",
        "double_blocks_to_swap", "single_blocks_to_swap", "cpu_offload_checkpointing",
    ),
    # sd3_train_utils.add_sd3_training_arguments
    "sd3": (
        "clip_l", "clip_g", "t5xxl", "save_clip", "save_t5xxl", "t5xxl_device", "t5xxl_dtype",
        "t5xxl_max_token_length", "apply_lg_attn_mask", "apply_t5_attn_mask", "clip_l_dropout_rate",
        "clip_g_dropout_rate", "t5_dropout_rate", "pos_emb_random_crop_rate", "enable_scaled_pos_embed",
        "training_shift",
    ),
    # train_leco.py / sdxl_train_leco.py's own flags (sd-scripts 063ef10, after the snapshot above), and the
    # placeholders they add for verify_training_args (--cache_latents, --cache_latents_to_disk, --deepspeed).
    "leco": (
        "save_model_as", "no_metadata", "prompts_file", "max_denoising_steps", "leco_denoise_guidance_scale",
        "network_weights", "network_module", "network_dim", "network_alpha", "network_dropout", "network_args",
        "network_train_text_encoder_only", "network_train_unet_only", "training_comment", "dim_from_weights",
        "unet_lr", "cache_latents", "cache_latents_to_disk", "deepspeed",
    ),
    "sd3_train": (
        "train_text_encoder", "train_t5xxl", "use_t5xxl_cache_only", "learning_rate_te1", "learning_rate_te2",
        "learning_rate_te3", "blockwise_fused_optimizers", "fused_optimizer_groups", "skip_latents_validity_check",
        "num_last_block_to_freeze",
    ),
}  # fmt: skip

_BASE = ("logging", "sd_models", "model_spec", "dataset")
_COMMON = _BASE + ("dataset_caption_dropout", "dataset_caption")  # add_dataset_arguments(parser, *, True, True)
_CUSTOM = ("custom_train", "custom_train_weighted")
# train_network.setup_parser(), which the flux_/sd3_train_network scripts extend.
_NETWORK = _COMMON + (
    "dataset_dreambooth", "training", "training_dreambooth", "masked_loss", "deepspeed", "optimizer",
    "dataset_config", *_CUSTOM, "train_network",
)  # fmt: skip
# The groups flux_train.py and sd3_train.py add before their own (as sdxl_train.py does).
_DIT_FINETUNE = _COMMON + (
    "dataset_dreambooth", "training", "masked_loss", "deepspeed", "sd_saving", "optimizer", "dataset_config",
    *_CUSTOM,
)  # fmt: skip
# train_textual_inversion.setup_parser(): no caption dropout, no weighted captions.
_TEXTUAL_INVERSION = _BASE + (
    "dataset_dreambooth", "dataset_caption", "training", "training_dreambooth", "masked_loss", "deepspeed",
    "optimizer", "dataset_config", "custom_train", "textual_inversion",
)  # fmt: skip
# train_leco.setup_parser() (kohya-ss/sd-scripts 063ef10): no dataset, no model-spec metadata, no masked loss.
_LECO = ("logging", "sd_models", "optimizer", "training", "custom_train", "leco")
COMMAND_GROUPS: dict[str, tuple[str, ...]] = {
    "train_network": _NETWORK,
    "sdxl_train_network": _NETWORK + ("sdxl",),
    "fine_tune": _COMMON + (
        "training", "deepspeed", "sd_saving", "optimizer", "dataset_config", *_CUSTOM, "fine_tune",
    ),
    "sdxl_train": _COMMON + (
        "dataset_dreambooth", "training", "masked_loss", "deepspeed", "sd_saving", "optimizer",
        "dataset_config", *_CUSTOM, "sdxl", "sdxl_train",
    ),
    # add_dataset_arguments(parser, True, False, True): DreamBooth folders, no metadata file
    "train_db": _BASE + (
        "dataset_caption_dropout", "dataset_dreambooth", "training", "training_dreambooth", "masked_loss",
        "deepspeed", "sd_saving", "optimizer", "dataset_config", *_CUSTOM, "train_db",
    ),
    "train_textual_inversion": _TEXTUAL_INVERSION,
    "sdxl_train_textual_inversion": _TEXTUAL_INVERSION + ("sdxl_no_text_cache",),
    "train_leco": _LECO,
    "sdxl_train_leco": _LECO + ("sdxl_no_text_cache",),
    "flux_train_network": _NETWORK + ("dit_training", "flux", "flux_train_network"),
    "flux_train": _DIT_FINETUNE + ("dit_training", "flux", "flux_train"),
    "sd3_train_network": _NETWORK + ("dit_training", "sd3"),
    "sd3_train": _DIT_FINETUNE + ("dit_training", "sd3", "sd3_train"),
}  # fmt: skip


@cache
def sd_scripts_flags(command: str) -> frozenset[str]:
    """The flag names (without "--") that sd-scripts' `<command>.py` accepts; none for train_video, which
    takes finetrainers' flags (finetrainers_flags.py) and has no sd-scripts script."""
    return frozenset(flag for group in COMMAND_GROUPS.get(command, ()) for flag in GROUPS[group])


def sd_scripts_commands_for(flag: str) -> tuple[str, ...]:
    """The sd-scripts scripts that accept `flag` (empty when sd-scripts does not know it)."""
    return tuple(command for command in COMMAND_GROUPS if flag in sd_scripts_flags(command))
