"""SDXL text-encoder output caching (sd-scripts' sdxl_train_network / sdxl_train flags)."""

from backend.options.schema import TEXT_CACHE_COMMANDS, Option, declare_all

declare_all(
    [
        Option(
            "cache_text_encoder_outputs", "bool", False, group="advanced", commands=TEXT_CACHE_COMMANDS,
            help="Run both text encoders once over every caption before training, keep the outputs in memory "
            "and move the text encoders off the GPU: roughly 1.6 GB less VRAM for SDXL and slightly faster "
            "steps, for a short encoding pass at the start and some system RAM. Captions must not change "
            "between epochs, so it cannot be combined with shuffle_caption, wildcards, caption dropout or "
            "caption tag dropout; the LoRA command also needs --network_train_unet_only.",
        ),
        Option(
            "cache_text_encoder_outputs_to_disk", "bool", False, group="advanced", commands=TEXT_CACHE_COMMANDS,
            help="Like --cache_text_encoder_outputs (and turns it on), but also writes "
            "'<image>_te_outputs.npz' beside each image and reuses it in later runs. A file is re-encoded when "
            "its caption, the model, --max_token_length or --mixed_precision changed. Same constraints as "
            "--cache_text_encoder_outputs.",
        ),
    ]
)
