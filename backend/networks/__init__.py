"""Trainable networks (LoRA, LoCon, DyLoRA, LyCORIS) and the sd-scripts network plug-in interface.

Modules: `lora` (`--network_module networks.lora`), `dylora` (`networks.dylora`), `loader`
(resolves `--network_module`, creates networks the way sd-scripts' trainer does), `args`
(`--network_args` parsing and checks, torch-free), `naming` (targets and key names), `blocks`
(per-block U-Net settings), `module`/`network`/`build` (the LoRA layer and network object),
`weights_io` (files, hashes), `bridge` (views of our models laid out as sd-scripts' own, for
networks from other modules: the layers and key names they pick there).

The plug-in interface (sd-scripts train_network.py; lycoris.kohya implements it too)
===================================================================================

A network module is any importable Python module with two functions:

`create_network(multiplier, network_dim, network_alpha, vae, text_encoder, unet, neuron_dropout=None, **kwargs)`
    A new, untrained network. `network_dim`/`network_alpha` may be None (module defaults; ours:
    4 and 1). `text_encoder` is one model or a list (SDXL: two). `kwargs` are the
    `--network_args` (string values). Ours also take keyword `unet_module_name`, a mapper from a
    diffusers U-Net module path to the path used in file keys (SGM paths for SDXL).

`create_network_from_weights(multiplier, file, vae, text_encoder, unet, weights_sd=None, for_inference=False, **kwargs)`
    Returns `(network, weights_sd)`: a network shaped like the file (ranks, alphas, which layers),
    with the weights not yet loaded. Used by `--dim_from_weights` (then `load_weights`) and
    `--base_weights` (then `merge_to`).

The network is an `nn.Module` (`train`, `eval`, `to`, `parameters`, `state_dict`) with:

- `apply_to(text_encoder, unet, apply_text_encoder, apply_unet)`: hook into the models;
  `apply_text_encoder=False` is --network_train_unet_only, `apply_unet=False` is
  --network_train_text_encoder_only (the other part's modules are dropped).
- `load_weights(file)`: load a LoRA file into the applied network (--network_weights); returns a
  report of missing/unexpected keys.
- `prepare_optimizer_params(text_encoder_lr, unet_lr, default_lr)` -> `(param_groups,
  descriptions)`: `text_encoder_lr` is a number, or a list with one value per text encoder;
  None falls back to `default_lr` (--learning_rate). One description per group, for LR logging
  (`textencoder`, `unet`, `unet_block<N>`, with ` plus` for LoRA+ up-weight groups).
- `enable_gradient_checkpointing()`, `prepare_grad_etc(text_encoder, unet)` (before training),
  `on_epoch_start(text_encoder, unet)` (sets train mode), `get_trainable_params()`.
- `save_weights(file, dtype, metadata)`: `.safetensors` with the metadata (string values, adds
  `sshs_model_hash`/`sshs_legacy_hash`) or `.ckpt`/`.pt`; written atomically; `dtype` None keeps
  the training dtype.
- Optional (checked with `hasattr`): `set_multiplier(m)`, `apply_max_norm_regularization(max_norm,
  device)` -> `(modules scaled, mean norm, max norm)` for --scale_weight_norms,
  `is_mergeable()`/`merge_to(text_encoder, unet, weights_sd, dtype, device)`,
  `prepare_optimizer_params_with_multiple_te_lrs` (same as prepare_optimizer_params here),
  `prepare_network(args)`, `on_step_start(...)`.

File format: keys `lora_unet_<path>`, `lora_te_<path>` (SDXL `lora_te1_`/`lora_te2_`), dots in the
path replaced by `_`, suffixes `.lora_down.weight`, `.lora_up.weight`, `.alpha` (scalar).
Effective weight: `W + multiplier * (alpha / rank) * up @ down`.
"""
