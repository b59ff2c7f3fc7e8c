"""LoRA file tools: resize, merge (into LoRAs or a checkpoint), extract, convert, inspect, and the
file, layer and low-rank helpers they share. Commands: `python -m backend.tools.<tool>` (the
modules one level up run the ones here)."""
