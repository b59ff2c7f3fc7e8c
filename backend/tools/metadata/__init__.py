"""The fine-tune metadata workflow (sd-scripts' finetune/): captions and tags merged into one JSON
file, cleaned, then bucketed with cached latents, for `backend.fine_tune --in_json`."""
