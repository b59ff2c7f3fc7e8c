"""The ss_* keys sd-scripts' train_network.py writes (commit 48d368fa), per dataset mode, as data.

Line numbers are train_network.py's. Our files carry exactly these keys, except where a test says
otherwise; fine-tunes carry them without the network keys (sd-scripts' fine_tune writes none).
"""

from __future__ import annotations

# :1003-1065, every run.
TRAINING_KEYS = frozenset({
    "ss_session_id", "ss_training_started_at", "ss_output_name", "ss_learning_rate", "ss_text_encoder_lr",
    "ss_unet_lr", "ss_num_train_images", "ss_num_validation_images", "ss_num_reg_images", "ss_num_batches_per_epoch",
    "ss_num_epochs", "ss_gradient_checkpointing", "ss_gradient_accumulation_steps", "ss_max_train_steps",
    "ss_lr_warmup_steps", "ss_lr_scheduler", "ss_network_module", "ss_network_dim", "ss_network_alpha",
    "ss_network_dropout", "ss_mixed_precision", "ss_full_fp16", "ss_v2", "ss_base_model_version", "ss_clip_skip",
    "ss_max_token_length", "ss_cache_latents", "ss_seed", "ss_lowram", "ss_noise_offset",
    "ss_multires_noise_iterations", "ss_multires_noise_discount", "ss_adaptive_noise_scale", "ss_zero_terminal_snr",
    "ss_training_comment", "ss_sd_scripts_commit_hash", "ss_optimizer", "ss_max_grad_norm", "ss_caption_dropout_rate",
    "ss_caption_dropout_every_n_epochs", "ss_caption_tag_dropout_rate", "ss_face_crop_aug_range",
    "ss_prior_loss_weight", "ss_min_snr_gamma", "ss_scale_weight_norms", "ss_ip_noise_gamma", "ss_debiased_estimation",
    "ss_noise_offset_random_strength", "ss_ip_noise_gamma_random_strength", "ss_loss_type", "ss_huber_schedule",
    "ss_huber_scale", "ss_huber_c", "ss_fp8_base", "ss_fp8_base_unet", "ss_validation_seed", "ss_validation_split",
    "ss_max_validation_steps", "ss_validate_every_n_epochs", "ss_validate_every_n_steps", "ss_resize_interpolation",
})  # fmt: skip
# :1300-1303, added at every save.
SAVE_KEYS = frozenset({"ss_training_finished_at", "ss_steps", "ss_epoch"})
# :1157-1159, with --dataset_config.
DATASET_CONFIG_KEYS = frozenset({"ss_datasets", "ss_tag_frequency", "ss_dataset_dirs"})
# :1181-1198, without it (the folder convention and --in_json alike).
FLAT_DATASET_KEYS = frozenset({
    "ss_batch_size_per_device", "ss_total_batch_size", "ss_resolution", "ss_color_aug", "ss_flip_aug",
    "ss_random_crop", "ss_shuffle_caption", "ss_enable_bucket", "ss_bucket_no_upscale", "ss_min_bucket_reso",
    "ss_max_bucket_reso", "ss_keep_tokens", "ss_dataset_dirs", "ss_reg_dataset_dirs", "ss_tag_frequency",
    "ss_bucket_info",
})  # fmt: skip
# :1203-1204, with --network_args.
NETWORK_ARGS_KEYS = frozenset({"ss_network_args"})
# :1207-1213: the name always; the two hashes when the model is a file (for a diffusers folder
# sd-scripts writes the placeholder "IsADirectory"; we leave those two keys out).
MODEL_NAME_KEYS = frozenset({"ss_sd_model_name"})
MODEL_HASH_KEYS = frozenset({"ss_sd_model_hash", "ss_new_sd_model_hash"})
# What a full fine-tune leaves out and adds (ours: sd-scripts' fine_tune writes no ss_* key at all).
NETWORK_KEYS = frozenset({"ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_dropout",
                          "ss_network_args", "ss_unet_lr", "ss_text_encoder_lr", "ss_scale_weight_norms"})


def lora_keys(*, dataset_config: bool, network_args: bool, model_file: bool) -> frozenset[str]:
    """Every ss_* key of a LoRA saved by train_network in that mode."""
    keys = TRAINING_KEYS | SAVE_KEYS | MODEL_NAME_KEYS
    keys |= DATASET_CONFIG_KEYS if dataset_config else FLAT_DATASET_KEYS
    keys |= NETWORK_ARGS_KEYS if network_args else frozenset()
    return keys | (MODEL_HASH_KEYS if model_file else frozenset())


def ss_keys(metadata: dict[str, str]) -> set[str]:
    return {key for key in metadata if key.startswith("ss_")}
