"""The training tabs (LoRA and fine-tune) and what they do: forms from the option schema, presets, the
last form on disk, the run command and its export, the progress panel, TensorBoard."""
