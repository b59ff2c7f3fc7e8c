"""LECO options (train_leco, sdxl_train_leco): sd-scripts' train_leco.py / sdxl_train_leco.py flags.

Decisions:
- sd-scripts' LECO scripts build their parser from the same helpers as train_network (add_sd_models_arguments,
  add_optimizer_arguments, add_training_arguments(support_dreambooth=False), add_custom_train_arguments without
  weighted captions, SDXL: add_sdxl_training_arguments without text-encoder caching, add_logging_arguments) plus
  their own flags. So a LECO command takes its family's LoRA command's option (`share_with_leco`), with the same
  meaning and checks, and only the three LECO flags are declared here.
- No dataset options: sd-scripts' LECO scripts have none (--cache_latents/--cache_latents_to_disk are hidden
  placeholders there: accepted here and said to do nothing). Its hidden --deepspeed placeholder is refused as the
  LoRA commands refuse it (DeepSpeed is for full fine-tunes here).
- Flags sd-scripts parses and never reads in LECO are accepted with a warning naming the reason.
- --max_train_epochs is refused by preflight (LECO counts steps only, as sd-scripts' docs say); the run is one
  "epoch" of --max_train_steps steps (backend/training/leco_data.py).
- --network_train_text_encoder_only is refused by preflight (sd-scripts raises too); --network_train_unet_only is
  accepted and changes nothing (the U-Net alone is always trained).
"""

from backend.messages import msg
from backend.options.schema import LECO_COMMANDS, Option, declare_all, share_with_leco

declare_all(
    [
        Option(
            "prompts_file", "path", None, group="basic", commands=LECO_COMMANDS, required=True,
            help="The LECO prompt file (TOML): [[prompts]] entries (target, positive, unconditional, neutral, action "
            "erase/enhance, guidance_scale, resolution, batch_size, multiplier, weight) or slider [[targets]] "
            "(target_class, positive, negative; top-level defaults, neutrals, neutral_prompt_file). Checked before "
            "the model loads.",
        ),
        Option(
            "max_denoising_steps", "int", 40, minimum=2, group="basic", commands=LECO_COMMANDS,
            range_reason=msg(
                "options.range_reason.max_denoising_steps",
                "each step denoises from pure noise for a random 1 to N-1 of N steps; with fewer than 2 there is no "
                "step to draw (sd-scripts fails in torch.randint)",
            ),
            help="Each step first denoises pure noise for a random number (1 to N-1) of N sampling steps with the "
            "LoRA applied, then trains at the timestep reached. sd-scripts' default 40.",
        ),
        Option(
            "leco_denoise_guidance_scale", "float", 3.0, group="basic", commands=LECO_COMMANDS,
            help="Classifier-free guidance of that partial denoising pass (the prompt file's guidance_scale is the "
            "strength of the erase/enhance target instead). sd-scripts' default 3.0.",
        ),
    ]
)

# What sd-scripts' LECO scripts take of their LoRA command's flags, with the same meaning here.
share_with_leco([
    "preflight", "console_log_level", "console_log_file", "console_log_simple",
    "v2", "v_parameterization", "pretrained_model_name_or_path", "tokenizer_cache_dir", "disable_mmap_load_safetensors",
    "output_dir", "output_name", "huggingface_repo_id", "huggingface_repo_type", "huggingface_path_in_repo",
    "huggingface_token", "huggingface_repo_visibility", "save_state_to_huggingface", "resume_from_huggingface",
    "async_upload", "save_precision", "save_every_n_steps", "save_last_n_steps", "save_last_n_steps_state",
    "save_state", "save_state_on_train_end", "resume", "max_token_length", "mem_eff_attn", "torch_compile",
    "dynamo_backend", "xformers", "sdpa", "vae", "max_train_steps", "max_train_epochs", "seed",
    "gradient_checkpointing", "gradient_accumulation_steps", "mixed_precision", "full_fp16", "full_bf16", "fp8_base",
    "ddp_timeout", "ddp_gradient_as_bucket_view", "ddp_static_graph", "clip_skip", "logging_dir", "log_with",
    "log_prefix", "log_tracker_name", "wandb_run_name", "log_tracker_config", "wandb_api_key", "log_config",
    "noise_offset", "zero_terminal_snr", "lowram", "highvram", "sample_every_n_steps", "sample_at_first",
    "sample_prompts", "sample_sampler", "config_file", "output_config",
    "optimizer_type", "use_8bit_adam", "use_lion_optimizer", "learning_rate", "max_grad_norm", "optimizer_args",
    "lr_scheduler_type", "lr_scheduler_args", "lr_scheduler", "lr_warmup_steps", "lr_decay_steps",
    "lr_scheduler_num_cycles", "lr_scheduler_power", "fused_backward_pass", "lr_scheduler_timescale",
    "lr_scheduler_min_lr_ratio", "min_snr_gamma",
    "save_model_as", "no_metadata", "network_weights", "network_module", "network_dim", "network_alpha",
    "network_dropout", "network_args", "network_train_text_encoder_only", "training_comment", "dim_from_weights",
    "unet_lr",
])  # fmt: skip

share_with_leco(["train_batch_size"], msg(
    "options.ignored.leco_batch", "each prompt setting's batch_size in the prompt file sets its batch"))
share_with_leco(
    ["max_data_loader_n_workers", "persistent_data_loader_workers", "cache_latents", "cache_latents_to_disk"],
    msg("options.ignored.leco_no_images", "LECO trains from prompts alone: no images are loaded or encoded"),
)
share_with_leco(
    ["save_every_n_epochs", "save_n_epoch_ratio", "save_last_n_epochs", "save_last_n_epochs_state",
     "sample_every_n_epochs"],
    msg("options.ignored.leco_epochs", "LECO counts steps only; use the _n_steps options"),
)
share_with_leco(
    ["noise_offset_random_strength", "multires_noise_iterations", "multires_noise_discount", "ip_noise_gamma",
     "ip_noise_gamma_random_strength", "adaptive_noise_scale", "min_timestep", "max_timestep", "loss_type",
     "huber_schedule", "huber_c", "huber_scale", "scale_v_pred_loss_like_noise_pred", "v_pred_like_loss",
     "debiased_estimation_loss"],
    msg("options.ignored.leco_step", "a LECO step reaches its timestep by denoising and compares predictions by "
        "squared error, without the noise and loss options of image training"),
)
share_with_leco(["network_train_unet_only"], msg(
    "options.ignored.leco_unet_only", "LECO always trains the U-Net alone"))
