"""Where each kohya_ss GUI LoRA config key goes: the mapping table of `gui.kohya_import`, in one place.

kohya_ss (bmaltais/kohya_ss v26, `lora_gui.py`) saves every field of its LoRA tab as one flat JSON
object (287 keys today, fewer in older versions). `train_model` then writes most of them into the
sd-scripts TOML under the same name, renames or derives a few, folds the network-shape fields into
`network_args` (see `network.py`) and passes the accelerate fields to
`accelerate launch`. A key that is none of the below and is one of our options keeps its name;
anything else ends up in the import report with the reason.

kohya_ss drops every value that is "", False, None or 0 before writing the TOML (`value not in ["",
False, None]`, and 0 == False), so such a value means "not set" here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.messages import msg

# Same meaning, another name.
RENAMED = {
    "max_resolution": "resolution",
    "optimizer": "optimizer_type",
    "lora_network_weights": "network_weights",  # before 2023-04
}

# kohya_ss's checkboxes that pick one of our model families: kohya_ss's key -> the family's name in
# backend/families (the import runs that family's LoRA command). With none on, kohya_ss trains an SD
# 1.x/2.x model; its "v2" checkbox is our v2 option, which the GUI shows as SD 2.x.
FAMILY_CHECKBOXES = {"sdxl": "sdxl", "flux1_checkbox": "flux_dev", "sd3_checkbox": "sd3_medium"}
NO_CHECKBOX_FAMILY = "sd1"
# kohya_ss's Finetuning tab saves its SDXL checkbox as sdxl_checkbox and tests SD3 before FLUX.1
# (finetune_gui.py: train_model): its key -> the FAMILY_CHECKBOXES name, in that order.
FINETUNE_CHECKBOXES = {"sdxl_checkbox": "sdxl", "sd3_checkbox": "sd3_checkbox", "flux1_checkbox": "flux1_checkbox"}
SDXL_CHECKBOX = "sdxl"  # the FAMILY_CHECKBOXES name of kohya_ss's SDXL checkbox (the tabs' rules test it)
# kohya_ss LoRA types that train one family only: the type -> the checkbox it stands for when that is off
# (kohya_ss would have started train_network.py with sd-scripts' networks.lora_flux, and failed).
FAMILY_LORA_TYPES = {"Flux1": "flux1_checkbox", "Flux1 OFT": "flux1_checkbox"}
# Checkboxes standing for several of our model types (FLUX.1 dev and schnell): the model file tells them
# (model_choice.py); for a file that is not here, a word in its name -> the type, else the checkbox's own.
NAME_HINTS = {
    "flux1_checkbox": {"schnell": "flux_schnell", "chroma": "chroma"},
    "sd3_checkbox": {"large": "sd3_large", "medium": "sd3_medium"},  # sd3.5_large.safetensors, sd3.5_medium...
}

# Written by kohya_ss only when the SDXL checkbox is on; otherwise ignored (so here too).
SDXL_RENAMED = {
    "sdxl_no_half_vae": "no_half_vae",
    "sdxl_cache_text_encoder_outputs": "cache_text_encoder_outputs",
}
# Settings kohya_ss passes only with one of FAMILY_CHECKBOXES on: checkbox -> (kohya_ss key -> our
# option, why the key is left out with the checkbox off).
FLUX_RENAMED = {
    "flux1_cache_text_encoder_outputs": "cache_text_encoder_outputs",
    "flux1_cache_text_encoder_outputs_to_disk": "cache_text_encoder_outputs_to_disk",
    # the DreamBooth tab's own names of the FLUX.1 text encoder files (its clip_l and t5xxl are SD 3.5's)
    "flux1_clip_l": "clip_l",
    "flux1_t5xxl": "t5xxl",
}
CHECKBOX_RENAMED: dict[str, tuple[dict[str, str], Callable[[], str]]] = {
    "sdxl": (SDXL_RENAMED, lambda: msg("gui.kohya.sdxl_only", "SDXL only; kohya_ss ignores it here")),
    "flux1_checkbox": (FLUX_RENAMED, lambda: msg("gui.kohya.flux_only", "FLUX.1 only; kohya_ss ignores it here")),
}

# The FLUX.1 section of kohya_ss's form (class_flux1.py), with its defaults: passed only with
# flux1_checkbox on (a default or empty value is dropped silently otherwise, anything else reported as
# FLUX.1 only). With it on, each key keeps its name (ae, clip_l, t5xxl, guidance_scale, ... are our
# options), goes into network_args (network.py), or is handled by flux_steps.py.
FLUX_ONLY: dict[str, Any] = {
    "model_type": "flux", "ae": "", "clip_l": "", "t5xxl": "", "discrete_flow_shift": 3.0,
    "model_prediction_type": "sigma_scaled", "timestep_sampling": "sigma", "split_mode": False, "train_blocks": "all",
    "t5xxl_max_token_length": 512, "enable_all_linear": False, "guidance_scale": 3.5, "mem_eff_save": False,
    "apply_t5_attn_mask": False, "split_qkv": False, "train_t5xxl": False, "cpu_offload_checkpointing": False,
    "blocks_to_swap": 0, "single_blocks_to_swap": 0, "double_blocks_to_swap": 0, "show_timesteps": "",
    "show_timesteps_resolution": "1024", "img_attn_dim": "", "img_mlp_dim": "", "img_mod_dim": "", "single_dim": "",
    "txt_attn_dim": "", "txt_mlp_dim": "", "txt_mod_dim": "", "single_mod_dim": "", "in_dims": "",
    "train_double_block_indices": "all", "train_single_block_indices": "all", "fp8_base_unet": False, "t5xxl_lr": 0,
    "train_lora_ggpo": False, "ggpo_sigma": 0.03, "ggpo_beta": 0.01,
    # Saved by kohya_ss's DreamBooth/fine-tuning tab (flux_train); a LoRA config may carry them.
    "flux_fused_backward_pass": False, "blockwise_fused_optimizers": False,
}  # fmt: skip

# With flux1_checkbox on: FLUX.1 keys that are no option of ours, with the report reason and why.
FLUX_NO_OPTION: dict[str, tuple[str, Callable[[], str]]] = {
    "split_mode": ("not_implemented", lambda: msg(
        "gui.kohya.flux_split_mode",
        "sd-scripts deprecated --split_mode for --blocks_to_swap; network_args train_blocks=single, which kohya_ss "
        "adds with it, is kept",
    )),
    "mem_eff_save": ("not_used", lambda: msg(
        "gui.kohya.flux_mem_eff_save", "an option of sd-scripts' flux_train (fine-tuning); flux_train_network does "
        "not read it",
    )),
    "single_blocks_to_swap": ("not_used", lambda: msg(
        "gui.kohya.flux_old_swap", "sd-scripts no longer reads it (kohya_ss marks it deprecated); blocks_to_swap "
        "replaces it",
    )),
    "double_blocks_to_swap": ("not_used", lambda: msg(
        "gui.kohya.flux_old_swap", "sd-scripts no longer reads it (kohya_ss marks it deprecated); blocks_to_swap "
        "replaces it",
    )),
    "enable_all_linear": ("not_used", lambda: msg(
        "gui.kohya.flux_oft_only", 'used by LoRA type "Flux1 OFT" only',
    )),
    "show_timesteps": ("not_implemented", lambda: msg(
        "gui.kohya.flux_show_timesteps", "sd-scripts' --show_timesteps (show the timestep distribution, then stop) "
        "is not part of this trainer",
    )),
    "flux_fused_backward_pass": ("not_used", lambda: msg(
        "gui.kohya.flux_fine_tune_only", "a setting of kohya_ss's fine-tuning tab (flux_train); a LoRA does not use it",
    )),
    "blockwise_fused_optimizers": ("not_used", lambda: msg(
        "gui.kohya.flux_fine_tune_only", "a setting of kohya_ss's fine-tuning tab (flux_train); a LoRA does not use it",
    )),
}  # fmt: skip

# The SD3 section of kohya_ss's form (class_sd3.py), with its defaults: passed only with sd3_checkbox on
# (lora_gui.py: train_model), otherwise ignored (a default or empty value is dropped silently, anything else
# reported as SD 3.5 only). With it on, sd3_steps.py maps each key: renamed (SD3_RENAMED), by its name (an
# option of ours), or reported (SD3_NO_OPTION).
SD3_ONLY: dict[str, Any] = {
    "sd3_cache_text_encoder_outputs": False, "sd3_cache_text_encoder_outputs_to_disk": False,
    "sd3_fused_backward_pass": False, "clip_g": "", "clip_g_dropout_rate": 0.0, "sd3_clip_l": "",
    "sd3_clip_l_dropout_rate": 0.0, "sd3_disable_mmap_load_safetensors": False, "sd3_enable_scaled_pos_embed": False,
    "logit_mean": 0.0, "logit_std": 1.0, "mode_scale": 1.29, "pos_emb_random_crop_rate": 0.0, "save_clip": False,
    "save_t5xxl": False, "sd3_t5_dropout_rate": 0.0, "sd3_t5xxl": "", "t5xxl_device": "", "t5xxl_dtype": "bf16",
    "sd3_text_encoder_batch_size": 1, "weighting_scheme": "logit_normal",
}  # fmt: skip
# kohya_ss's name -> the sd-scripts option it writes (lora_gui.py: "clip_l": sd3_clip_l if sd3_checkbox ...).
SD3_RENAMED = {
    "sd3_cache_text_encoder_outputs": "cache_text_encoder_outputs",
    "sd3_cache_text_encoder_outputs_to_disk": "cache_text_encoder_outputs_to_disk",
    "sd3_clip_l": "clip_l", "sd3_t5xxl": "t5xxl", "sd3_clip_l_dropout_rate": "clip_l_dropout_rate",
    "sd3_t5_dropout_rate": "t5_dropout_rate", "sd3_enable_scaled_pos_embed": "enable_scaled_pos_embed",
    "sd3_disable_mmap_load_safetensors": "disable_mmap_load_safetensors",
    "sd3_fused_backward_pass": "fused_backward_pass", "sd3_text_encoder_batch_size": "text_encoder_batch_size",
}  # fmt: skip
# With sd3_checkbox on: SD3 keys that are no option of ours, with the report reason and why.
SD3_NO_OPTION: dict[str, tuple[str, Callable[[], str]]] = {
    **dict.fromkeys(("save_clip", "save_t5xxl", "t5xxl_device", "t5xxl_dtype"), ("not_used", lambda: msg(
        "gui.kohya.sd3_does_not_work", 'sd-scripts marks it "[DOES NOT WORK]" and ignores it',
    ))),
    "sd3_text_encoder_batch_size": ("not_implemented", lambda: msg(
        "gui.kohya.sd3_text_encoder_batch_size", "sd-scripts' --text_encoder_batch_size is not part of this "
        "trainer: text-encoder outputs are cached 16 captions at a time",
    )),
}  # fmt: skip

# Converted rather than copied; the text says how (convert.py does it). With the other
# tables and the option schema it covers every key kohya_ss v26 saves (a test checks that).
DERIVED = {
    "lr_warmup": "percent of the total steps -> lr_warmup_steps as a ratio (10 -> 0.1)",
    "lr_warmup_steps": "a step count; wins over lr_warmup, as in kohya_ss",
    "epoch": "-> max_train_epochs when neither max_train_epochs nor max_train_steps is set",
    "max_train_epochs": "-> max_train_epochs (0 = not set)",
    "max_train_steps": "-> max_train_steps (0 = computed from epoch by kohya_ss)",
    "lr_scheduler_num_cycles": "empty -> epoch, as kohya_ss does",
    "learning_rate": "-> learning_rate",
    "text_encoder_lr": "-> text_encoder_lr; 0 with a U-Net LR -> network_train_unet_only",
    "unet_lr": "-> unet_lr; 0 with a text encoder LR -> network_train_text_encoder_only",
    "optimizer_args": "text -> list of key=value items",
    "lr_scheduler_args": "text -> list of key=value items",
    "xformers": 'dropdown "xformers" / "sdpa" / "none" (a checkbox before 2023) -> xformers / sdpa flags; '
    '"xformers" -> sdpa where the xformers package is not installed',
    "noise_offset_type": '"Original" passes noise_offset*, "Multires" passes multires_noise_*',
    "sample_prompts": "prompt text -> a prompt file the GUI writes; sample_prompts points to it",
    "additional_parameters": "raw trainer flags, mapped one by one through the option schema",
    "mixed_precision": "-> the trainer option and accelerate launch --mixed_precision",
    "use_8bit_adam": "before 2023-02: optimizer AdamW8bit when no optimizer is saved",
    "use_wandb": "before 2023-06: log_with wandb",
    "LoRA_type": "-> network_module, network_args and the GUI's network type",
    "sdxl": "picks the SDXL command of the config's kind (sdxl_train_network, sdxl_train, sdxl_train_leco, ...)",
    "flux1_checkbox": "picks flux_train_network, FLUX.1 dev or schnell as the model file says (model_choice.py)",
    "sd3_checkbox": "picks sd3_train_network, SD 3.5 Medium or Large as the model file says (model_choice.py)",
    "t5xxl_lr": "with a text encoder LR -> text_encoder_lr [CLIP-L, T5-XXL]",
    "template": 'Textual Inversion: "object template" / "style template" -> use_object_template / use_style_template '
    '("caption": the captions)',
}

# Options of `accelerate launch`, passed on its command line (gui.training.command_builder.ACCELERATE_FLAGS).
LAUNCH_KEYS = (
    "mixed_precision", "num_processes", "num_machines", "multi_gpu", "gpu_ids", "main_process_port",
    "num_cpu_threads_per_process", "dynamo_backend",
)  # fmt: skip
# kohya_ss accelerate fields that have no field in our launch settings.
LAUNCH_EXTRA_KEYS = (
    "dynamo_mode",
    "dynamo_use_fullgraph",
    "dynamo_use_dynamic",
    "extra_accelerate_launch_args",
)

SECRETS = ("huggingface_token", "wandb_api_key")

# Keys of the kohya_ss form that mean nothing outside it; dropped without a word.
SILENT = ("model_list", "save_as_bool")

# kohya_ss keys with no sd-scripts option here: (report reason, why). The why is made when reported,
# so it is in the language of the moment (backend/messages.py).
NO_OPTION: dict[str, tuple[str, Callable[[], str]]] = {
    "lowvram": ("not_used", lambda: msg("gui.kohya.lowvram", "kohya_ss does not pass it (sd-scripts removed --lowvram)")),
    "stop_text_encoder_training": (
        "not_used", lambda: msg("gui.kohya.stop_te_training", 'kohya_ss ignores it ("not yet supported")')
    ),
    "train_inpainting": (
        "not_implemented", lambda: msg("gui.kohya.newer_option", "an sd-scripts option newer than this trainer")
    ),
}  # fmt: skip

# Settings of the model families this trainer does not train, by section, with their kohya_ss
# defaults (a default or empty value is dropped silently; anything else is reported). kohya_ss
# ignores them for SD 1.x/2.x, SDXL, FLUX.1 and SD3.
OTHER_MODELS: dict[str, dict[str, Any]] = {
    "HunyuanImage-2.1": {
        "hunyuan_image_checkbox": False, "hunyuan_image_cache_text_encoder_outputs": False,
        "hunyuan_image_cache_text_encoder_outputs_to_disk": False, "hunyuan_text_encoder": "",
        "hunyuan_byt5": "", "hunyuan_vae": "", "hunyuan_discrete_flow_shift": 5.0,
        "hunyuan_model_prediction_type": "raw", "hunyuan_timestep_sampling": "shift",
        "hunyuan_sigmoid_scale": 1.0, "hunyuan_attn_mode": "torch", "hunyuan_split_attn": False,
        "hunyuan_fp8_scaled": False, "hunyuan_fp8_vl": False, "hunyuan_text_encoder_cpu": False,
        "hunyuan_vae_chunk_size": 0,
    },
    "Anima": {
        "anima_checkbox": False, "anima_cache_text_encoder_outputs": False,
        "anima_cache_text_encoder_outputs_to_disk": False, "anima_qwen3": "", "anima_vae": "",
        "anima_llm_adapter_path": "", "anima_t5_tokenizer_path": "", "anima_discrete_flow_shift": 1.0,
        "anima_timestep_sampling": "sigmoid", "anima_sigmoid_scale": 1.0, "anima_qwen3_max_token_length": 512,
        "anima_t5_max_token_length": 512, "anima_attn_mode": "torch", "anima_split_attn": False,
        "anima_vae_chunk_size": 0, "anima_vae_disable_cache": False, "anima_unsloth_offload_checkpointing": False,
        "anima_qwen_image_vae_2d": False, "anima_compile": False, "anima_torch_compile": False,
        "anima_compile_backend": "inductor", "anima_compile_mode": "default", "anima_compile_dynamic": "auto",
        "anima_compile_fullgraph": False, "anima_compile_cache_size_limit": 0,
    },
    "Lumina": {
        "lumina_checkbox": False, "lumina_cache_text_encoder_outputs": False,
        "lumina_cache_text_encoder_outputs_to_disk": False, "lumina_gemma2": "", "lumina_ae": "",
        "lumina_discrete_flow_shift": 6.0, "lumina_model_prediction_type": "raw",
        "lumina_timestep_sampling": "shift", "lumina_sigmoid_scale": 1.0, "lumina_gemma2_max_token_length": 256,
        "lumina_system_prompt": "", "lumina_use_flash_attn": False, "lumina_use_sage_attn": False,
    },
}  # fmt: skip

# The checkbox that selects each of those families (any one set: the config is refused).
MODEL_CHECKBOXES = {
    "hunyuan_image_checkbox": "HunyuanImage-2.1",
    "anima_checkbox": "Anima",
    "lumina_checkbox": "Lumina",
}

# Values our schema leaves unset that mean the same as kohya_ss's explicit value (the trainer's
# default behaviour), so they are not written.
SAME_AS_UNSET = {"clip_skip": 1, "max_token_length": 75, "max_timestep": 1000}

# kohya_ss writes this one even when it is 0 (every other 0 is dropped).
ZERO_IS_A_VALUE = ("max_data_loader_n_workers",)

# Spellings of "not set" that are not empty strings.
EMPTY_SPELLINGS = {"save_model_as": "same as source model", "dynamo_backend": "no", "xformers": "none"}

# kohya_ss form defaults that are not empty (an unused key holding one is dropped silently), or
# that are 0 where our default is not (vae_batch_size 0 means "sd-scripts' default": no warning).
KOHYA_DEFAULTS: dict[str, Any] = {
    "dynamo_mode": "default",
    "multires_noise_discount": 0.3,
    "vae_batch_size": 0,
}

SECTION_OF: dict[str, str] = {key: section for section, keys in OTHER_MODELS.items() for key in keys}
