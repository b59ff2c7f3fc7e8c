"""Options of the training run itself: length, precision, saving, resuming, logging, metadata."""

from backend.messages import msg
from backend.options.schema import (
    ALL_COMMANDS,
    FINETUNE_COMMANDS,
    KNOWN_COMMANDS,
    LORA_COMMANDS,
    TEXT_CACHE_COMMANDS,
    TEXTUAL_INVERSION_COMMANDS,
    Option,
    commands_taking,
    declare_all,
)

# Families whose captions go to T5 take its length instead (sd-scripts' Flux script warns that
# --max_token_length is not used, and goes on).
_T5_LENGTH = commands_taking("t5xxl_max_token_length")

declare_all(
    [
        # --- how long, how precise ---------------------------------------------------------------
        Option(
            "max_train_steps", "int", 1600, minimum=1, group="basic",
            range_reason=msg(
                "options.range_reason.max_train_steps",
                "0 steps trains nothing: sd-scripts would then save the untrained network under the final "
                "name"
            ),
            help="Number of optimizer steps to train (default 1600). Ignored when --max_train_epochs is set, "
            "which is usually easier to reason about: steps = epochs x batches per epoch / "
            "gradient_accumulation_steps.",
        ),
        Option(
            "max_train_epochs", "int", None, minimum=1, group="basic",
            range_reason=msg(
                "options.range_reason.max_train_epochs",
                "0 epochs trains nothing: sd-scripts would then save the untrained network under the final "
                "name"
            ),
            help="Number of epochs to train; overrides --max_train_steps. One epoch shows every image "
            "num_repeats times. Typical LoRA runs: 5-20 epochs.",
        ),
        Option(
            "seed", "int", None, minimum=0, group="basic", commands=KNOWN_COMMANDS,
            range_reason=msg(
                "options.range_reason.seed",
                "numpy's seed (set by accelerate's set_seed in sd-scripts) refuses negative numbers "
                "(ValueError)"
            ),
            help="Random seed for noise, timesteps, data order, caption shuffling and augmentation. Unset: a "
            "random seed is drawn and recorded in the metadata. Same seed and settings: the same run.",
        ),
        Option(
            "mixed_precision", "str", "no", choices=("no", "fp16", "bf16"), group="basic",
            help="Compute in half precision under autocast (trainable weights stay fp32). bf16 for RTX 30xx/40xx "
            "and newer; fp16 for older GPUs (SDXL in fp16 can give NaN losses). Default: no (fp32).",
        ),
        Option(
            "gradient_accumulation_steps", "int", 1, minimum=1, group="basic", commands=KNOWN_COMMANDS,
            range_reason=msg(
                "options.range_reason.gradient_accumulation_steps",
                "sd-scripts divides the batches per epoch by it (ZeroDivisionError at 0; a negative count "
                "gives a negative number of steps)"
            ),
            help="Add up gradients over this many batches before each optimizer step: an effective batch of "
            "train_batch_size x this value without the memory of a bigger batch. Default 1.",
        ),
        Option(
            "gradient_checkpointing", "bool", False, group="advanced", commands=KNOWN_COMMANDS,
            help="Recompute activations in the backward pass instead of keeping them: much less VRAM "
            "(essential for SDXL on 8-12 GB) for about 20-30% more time per step. Results are unchanged.",
        ),
        Option(
            "cpu_offload_checkpointing", "bool", False, group="advanced",
            help="With gradient checkpointing, keep what each checkpointed block needs for the backward pass (its "
            "inputs) in CPU RAM instead of on the GPU, copied back when the block is recomputed: less VRAM "
            "(most for FLUX.1 at large resolutions) for the time of the copies. Turns --gradient_checkpointing "
            "on, as sd-scripts does. CUDA only; not together with --blocks_to_swap (as in sd-scripts).",
        ),
        Option(
            "full_fp16", "bool", False, group="advanced",
            help="Keep the trainable weights and gradients in fp16 too (needs --mixed_precision fp16). Saves "
            "memory but is numerically fragile; prefer bf16 where the GPU supports it.",
        ),
        Option(
            "full_bf16", "bool", False, group="advanced",
            help="Keep the trainable weights and gradients in bf16 too (needs --mixed_precision bf16). Saves "
            "memory; pair with an optimizer that tolerates bf16 state (e.g. AdamW8bit, Adafactor).",
        ),
        Option(
            "no_half_vae", "bool", False, group="advanced",
            help="Run the VAE in fp32 even under mixed precision. The SDXL VAE overflows in fp16 (black or "
            "NaN latents and samples); this avoids it at some memory cost.",
        ),
        # sd-scripts' DDP settings. The processes here average gradients with one all-reduce per step instead of
        # a DistributedDataParallel wrapper (backend/training/distributed.py), so only the timeout applies.
        Option(
            "ddp_timeout", "int", None, group="advanced",
            help="Minutes the processes of a multi-GPU run wait for each other (torch.distributed's timeout) "
            "before giving up, e.g. while the main process caches latents or saves. Default: PyTorch's (10 "
            "minutes with NCCL, 30 with gloo).",
        ),
        *(Option(
            name, "bool", False, group="advanced",
            help="sd-scripts' setting of PyTorch's DistributedDataParallel wrapper, accepted for its configs; it "
            "changes nothing here, where the processes average their gradients without one (one all-reduce per "
            "step). Preflight says so when it is set.",
        ) for name in ("ddp_gradient_as_bucket_view", "ddp_static_graph")),
        Option(
            "lowram", "bool", False, group="advanced",
            help="Read a single-file checkpoint's weights straight into GPU memory instead of staging the "
            "model in system RAM: for machines with more VRAM than RAM (Colab, Kaggle). Diffusers folders are "
            "memory-mapped either way. On the CPU it changes nothing.",
        ),
        Option(
            "highvram", "bool", False, group="advanced",
            help="For GPUs with memory to spare: while latents are cached, the GPU's cached memory is not given "
            "back after every batch of images, only when the image size changes (sd-scripts' --highvram). A little "
            "faster caching; no effect on the CPU or without --cache_latents.",
        ),
        Option(
            "disable_mmap_load_safetensors", "bool", False, group="advanced",
            commands=tuple(dict.fromkeys(TEXT_CACHE_COMMANDS + ("sdxl_train_textual_inversion",))),
            help="Read a diffusers model folder's .safetensors files whole instead of memory-mapping them (sd-scripts' "
            "option): much faster loading from network drives and WSL's Windows drives, at the cost of RAM while "
            "loading. Single files are always read without memory-mapping here, in order, tensor by tensor.",
        ),
        Option(
            # Textual Inversion too (sd-scripts' TI scripts parse it and never read it): its U-Net is frozen.
            "fp8_base", "bool", False, group="advanced", commands=LORA_COMMANDS + TEXTUAL_INVERSION_COMMANDS,
            # sd-scripts' fine-tuning scripts (fine_tune, train_db, sdxl_train, flux_train, sd3_train) parse it and
            # never read it.
            ignored_on=FINETUNE_COMMANDS,
            ignored_reason=msg("options.ignored.fp8_base_finetune", "a fine-tune trains the model's own weights, "
                               "which stay in full precision, as sd-scripts' fine-tuning scripts keep them"),
            help="Keep the frozen base model (U-Net and text encoders) in 8-bit floating point (float8 e4m3): "
            "its Linear and Conv2d weights take half the memory of fp16/bf16 (SDXL's U-Net: about 2.6 GB "
            "instead of 5.1 GB), each layer upcast to the compute precision only while it runs. The LoRA "
            "itself trains at full precision. Costs some accuracy of the base model and a little speed; for "
            "8-12 GB GPUs. Works on any device (on the CPU it saves RAM).",
        ),
        Option(
            "fp8_base_unet", "bool", False, group="advanced", commands=LORA_COMMANDS,
            help="Like --fp8_base, but only the U-Net is kept in float8; the text encoders stay in the compute "
            "precision. The U-Net is most of the memory; the text encoders keep their full accuracy.",
        ),
        Option(
            "torch_compile", "bool", False, group="advanced",
            help="Compile the U-Net (with the network hooked into it) with torch.compile: the first steps "
            "take longer (minutes for SDXL) while graphs are built, then steps can be faster. The backend is "
            "--dynamo_backend. An `accelerate launch --dynamo_backend ...` setting is honoured as well.",
        ),
        Option(
            "dynamo_backend", "str", "inductor", group="advanced",
            choices=("eager", "aot_eager", "inductor", "aot_ts_nvfuser", "nvprims_nvfuser", "cudagraphs", "ofi",
                     "fx2trt", "onnxrt", "tensort", "ipex", "tvm"),
            help="torch.compile backend for --torch_compile (sd-scripts' choices). inductor (default) needs "
            "Triton on a GPU or a C++ compiler on the CPU; eager and aot_eager compile nothing (for "
            "debugging). Backends this PyTorch does not have are refused before training starts.",
        ),
        Option(
            "mem_eff_attn", "bool", False, group="advanced",
            help="sd-scripts' memory-efficient attention. Attention here always runs through PyTorch's "
            "scaled_dot_product_attention; on a CUDA GPU this flag restricts it to the memory-efficient "
            "kernel (lower peak memory than the flash or math kernels on some GPUs). On the CPU it changes "
            "nothing. Wins over --xformers, as in sd-scripts.",
        ),
        Option(
            "sdpa", "bool", False, group="advanced",
            help="Use PyTorch's scaled_dot_product_attention (memory-efficient/flash kernels). This is the "
            "default here; the flag is accepted for sd-scripts compatibility.",
        ),
        Option(
            "xformers", "bool", False, group="advanced",
            help="Use xformers' memory-efficient attention instead of PyTorch's SDPA. Needs the xformers "
            "package matching your torch build and a CUDA GPU; without them the run uses SDPA (the same kind "
            "of attention, as fast on torch 2.x) and says so.",
        ),
        Option(
            "clip_skip", "int", None, minimum=1, maximum=12, group="advanced",
            commands=("train_network", "fine_tune", "train_db", "train_textual_inversion"),
            # sd-scripts' SDXL scripts parse it, warn "clip_skip will be unexpected" and read the layer they always read
            ignored_on=("sdxl_train_network", "sdxl_train", "sdxl_train_textual_inversion"),
            ignored_reason=msg("options.ignored.clip_skip_sdxl", "SDXL's text encoders are always read at their "
                               "second-to-last layer"),
            range_reason=msg(
                "options.range_reason.clip_skip",
                "SD 1.x's text encoder has 12 layers: sd-scripts takes hidden_states[-clip_skip], so 0 and "
                "13 pick the token embeddings (no layer at all) and 14+ fail with an IndexError"
            ),
            help="Use the text encoder's output this many layers from the end: 1 = last layer (default for "
            "SD 1.x), 2 = penultimate (anime models trained on NovelAI-style checkpoints). It selects a layer "
            "of the text encoder; it has nothing to do with images. SD 2.x and SDXL always use the "
            "penultimate layer.",
        ),
        Option(
            "max_token_length", "int", None, choices=(None, 75, 150, 225), group="advanced",
            commands=tuple(command for command in ALL_COMMANDS if command not in _T5_LENGTH),
            ignored_on=_T5_LENGTH,
            ignored_reason=msg(
                "options.ignored.max_token_length",
                "it is the CLIP caption length, and this command's captions are cut by --t5xxl_max_token_length",
            ),
            help="Longest caption in tokens: 75 (default, one CLIP window), 150 or 225 (captions are encoded "
            "in 75-token chunks and joined). Longer captions are cut off.",
        ),
        Option(
            "preflight", "bool", False, group="advanced", cli_only=True, commands=KNOWN_COMMANDS,
            help="Check everything that can be checked without training (options, model file and family, "
            "folders, images, captions, buckets, steps, optional packages), print the report as one JSON "
            "object and exit: 0 when training could start, 1 with the errors.",
        ),
        # --- saving --------------------------------------------------------------------------------
        Option(
            "output_dir", "path", None, group="saving", required=True, commands=KNOWN_COMMANDS,
            help="Folder for the trained files, saved states, samples (output_dir/sample) and the run's "
            "settings. Created when missing.",
        ),
        Option(
            "output_name", "str", None, group="saving",
            help="File name of the trained model without extension (default 'last'). Intermediate saves add "
            "-000004 (epoch) or -step00000500 (step).",
        ),
        Option(
            "save_model_as", "str", "safetensors",
            choices=("safetensors", "ckpt", "pt", "diffusers", "diffusers_safetensors"), group="saving",
            help="File format of the trained model: safetensors (default, safe to share, carries metadata), ckpt "
            "or pt (pickled; no metadata). LoRA training takes safetensors, ckpt or pt. Fine-tuning "
            "(fine_tune, sdxl_train) takes safetensors or ckpt (one file in the original Stability layout, as "
            "A1111 and ComfyUI load it), diffusers (a diffusers model folder with .bin weights) or "
            "diffusers_safetensors (the same folder with .safetensors weights).",
        ),
        Option(
            "save_precision", "str", None, choices=(None, "float", "fp16", "bf16"), group="saving",
            help="Precision of the saved weights: float (fp32), fp16 (half the size, what most shared LoRAs "
            "use) or bf16. Default: the precision the weights were trained in.",
        ),
        Option(
            "save_every_n_epochs", "int", None, minimum=1, group="saving",
            range_reason=msg(
                "options.range_reason.save_every_n_epochs",
                "sd-scripts tests (epoch + 1) % N, so 0 fails with ZeroDivisionError after the first epoch; "
                "leave it unset to save only at the end"
            ),
            help="Also save the model every N epochs (name-000004.safetensors), to pick the best epoch later.",
        ),
        Option(
            "save_every_n_steps", "int", None, minimum=1, group="saving",
            range_reason=msg(
                "options.range_reason.save_every_n_steps",
                "sd-scripts tests step % N, so 0 fails with ZeroDivisionError at the first step; leave it "
                "unset to save only at the end"
            ),
            help="Also save the model every N optimizer steps (name-step00000500.safetensors).",
        ),
        Option(
            "save_last_n_epochs", "int", None, minimum=1, group="saving",
            range_reason=msg(
                "options.range_reason.save_last_n_epochs",
                "sd-scripts deletes the save of epoch (current - every_n * N) right after saving, so 0 "
                "deletes the file it has just written"
            ),
            help="With --save_every_n_epochs: keep only the newest N epoch saves, deleting older ones.",
        ),
        Option(
            "save_last_n_steps", "int", None, group="saving",
            help="With --save_every_n_steps: keep only the saves of the last N steps, deleting older ones (0: "
            "only the newest save, as in sd-scripts).",
        ),
        # --- Hugging Face uploads (backend/training/hub_upload.py) -------------------------------
        Option(
            "huggingface_repo_id", "str", None, group="saving",
            help="Upload each saved model to this Hugging Face repository (owner/name; created if missing). "
            "Preflight refuses the run when the Hub cannot be reached.",
        ),
        Option("huggingface_repo_type", "str", None, group="saving",
               help="The repository's type: model (default), dataset or space."),
        Option("huggingface_path_in_repo", "str", None, group="saving",
               help="The folder in the repository the files go to. Default: its top."),
        Option(
            "huggingface_token", "str", None, group="saving", secret=True,
            help="Hugging Face token with write access. Default: the one `huggingface-cli login` stored. A secret: "
            "never written to presets, saved forms or exported commands.",
        ),
        Option("huggingface_repo_visibility", "str", None, group="saving",
               help="public makes a new repository public; anything else (default) private."),
        Option("save_state_to_huggingface", "bool", False, group="saving",
               help="Upload the training states (--save_state) too."),
        Option(
            "resume_from_huggingface", "bool", False, group="saving",
            help="--resume names a state on the Hub: owner/repo/path[:revision[:repo type]]. It is downloaded "
            "before the checks, then resumed as a local state.",
        ),
        Option("async_upload", "bool", False, group="saving",
               help="Upload intermediate saves in the background while training goes on (the last save is waited "
               "for)."),
        Option(
            "save_n_epoch_ratio", "int", None, group="saving",
            help="Save about N times in the run instead of every --save_every_n_epochs: every floor(epochs / N) "
            "epochs, at least every epoch (10 epochs, N = 3: epochs 3, 6, 9 and the end), as sd-scripts does.",
        ),
        Option(
            "save_last_n_epochs_state", "int", None, group="saving",
            help="With --save_state: keep only the newest N epoch states, deleting older ones; models keep "
            "--save_last_n_epochs. Unset or 0: the states follow --save_last_n_epochs.",
        ),
        Option(
            "save_last_n_steps_state", "int", None, group="saving",
            help="With --save_state: keep only the states of the last N steps, deleting older ones; models keep "
            "--save_last_n_steps. Unset or 0: the states follow --save_last_n_steps.",
        ),
        Option(
            "save_state", "bool", False, group="saving",
            help="With each intermediate save, also save the full training state (network, optimizer, "
            "scheduler, RNG, step and epoch) in a '-state' folder that --resume continues from.",
        ),
        Option(
            "save_state_on_train_end", "bool", False, group="saving",
            help="Save the full training state at the end of training (name-state), to continue later.",
        ),
        Option(
            "resume", "path", None, group="saving",
            help="Continue training from a saved state folder (…-state): restores the network, optimizer, "
            "scheduler, RNG, step and epoch, and goes on at the next step with the same data order.",
        ),
        Option(
            "initial_step", "int", None, minimum=0, group="saving", commands=LORA_COMMANDS,
            range_reason=msg("options.range_reason.initial_step", "a count of steps already trained"),
            help="Count steps from this number (all epochs together; 0 = the first step), as sd-scripts' "
            "--initial_step: the run starts in the epoch holding that step and trains until --max_train_steps, so "
            "save names, samples and metadata go on from there. The learning-rate schedule is not advanced: it "
            "starts at its beginning, or continues where --resume's state left it. With --resume it wins over the "
            "state's step. Wins over --initial_epoch.",
        ),
        Option(
            "initial_epoch", "int", None, minimum=1, group="saving", commands=LORA_COMMANDS,
            range_reason=msg("options.range_reason.initial_epoch", "epochs are counted from 1 (the first epoch)"),
            help="Start at this epoch (1 = the first, as without it), as sd-scripts' --initial_epoch: steps are "
            "counted from the start of that epoch. The learning-rate schedule is not advanced (see --initial_step).",
        ),
        Option(
            "skip_until_initial_step", "bool", False, group="saving", commands=LORA_COMMANDS,
            help="With --initial_step/--initial_epoch: go through the data of the steps before it without training "
            "on it, so training continues on the images an uninterrupted run would have seen there. Without it the "
            "run starts at the beginning of that epoch's data.",
        ),
        Option(
            "no_metadata", "bool", False, group="saving",
            help="Write only the minimum metadata (model version, network module, dim, alpha, args) instead "
            "of the full training record (dataset folders, tag frequencies, settings).",
        ),
        Option("metadata_title", "str", None, group="saving", help="modelspec.title of the saved file (default: output_name)."),
        Option("metadata_author", "str", None, group="saving", help="modelspec.author of the saved file."),
        Option("metadata_description", "str", None, group="saving", help="modelspec.description of the saved file."),
        Option("metadata_license", "str", None, group="saving", help="modelspec.license of the saved file."),
        Option("metadata_tags", "str", None, group="saving", help="modelspec.tags, comma-separated."),
        Option("metadata_usage_hint", "str", None, group="saving",
               help="modelspec.usage_hint: a very short hint on how to use the model."),
        Option("metadata_thumbnail", "str", None, group="saving",
               help="modelspec.thumbnail: an image file (written into the model as a data URL) or a data URL."),
        Option("metadata_merged_from", "str", None, group="saving",
               help="modelspec.merged_from: the models this one was merged from."),
        Option("metadata_trigger_phrase", "str", None, group="saving",
               help="modelspec.trigger_phrase: the words that call up what the model learned."),
        Option("metadata_preprocessor", "str", None, group="saving",
               help="modelspec.preprocessor: the preprocessing the model expects (e.g. for a ControlNet)."),
        Option("metadata_is_negative_embedding", "str", None, group="saving",
               help="modelspec.is_negative_embedding: true for an embedding made for negative prompts."),
        # --- logging -------------------------------------------------------------------------------
        Option(
            "console_log_level", "str", None, choices=(None, "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
            group="logging", help="The lowest level of the log lines the trainer writes. Default: INFO.",
        ),
        Option(
            "console_log_file", "path", None, group="logging",
            help="Write the log to this file (replaced each run) instead of the console. Progress and the final "
            "error line still go to the console, so the GUI shows them.",
        ),
        Option(
            "console_log_simple", "bool", False, group="logging",
            help="sd-scripts' plain log lines instead of rich's coloured ones. The log lines here are always "
            "plain, so it changes nothing.",
        ),
        Option(
            "logging_dir", "path", None, group="logging", commands=KNOWN_COMMANDS,
            help="Write TensorBoard logs (loss, average loss, each learning rate) under this folder, one "
            "sub-folder per run. Unset: no logs.",
        ),
        Option(
            "log_with", "str", None, choices=(None, "tensorboard", "wandb", "all"), group="logging",
            help="Logger to use: tensorboard (default when --logging_dir is set; needs it), wandb (needs the wandb "
            "package and a login: `wandb login` or --wandb_api_key; with --logging_dir its files go there) or all.",
        ),
        Option(
            "log_prefix", "str", None, group="logging",
            help="Text put before the time stamp in the name of each run's log folder.",
        ),
        Option(
            "log_tracker_name", "str", None, group="logging",
            help="Name of the tracker (TensorBoard run group / wandb project). Default: the command name.",
        ),
        Option(
            "wandb_run_name", "str", None, group="logging",
            help="The name wandb shows for this run. Default: a name wandb makes up. Not used when "
            "--log_tracker_config is given (as in sd-scripts): set it there as name under [wandb].",
        ),
        Option(
            "wandb_api_key", "str", None, group="logging", secret=True,
            help="Log in to wandb with this API key before the run starts. Default: the key `wandb login` stored. "
            "A secret: never written to presets, saved forms, exported commands or logged configurations; put it "
            "in the --config_file TOML, not on the command line, which wandb records.",
        ),
        Option(
            "log_config", "bool", False, group="logging",
            help="Log the run's options to the trackers (TensorBoard: hyperparameters; wandb: the run's config), "
            "as sd-scripts does: secrets and paths (model, data, output and log folders) left out.",
        ),
        Option(
            "log_tracker_config", "path", None, group="logging",
            help="A TOML file with one table per tracker of keyword arguments for its start, e.g. [wandb] "
            "entity, tags, name or [tensorboard] flush_secs. Replaces --wandb_run_name, as in sd-scripts.",
        ),
    ]
)
