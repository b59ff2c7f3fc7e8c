"""Quick LoRA: a folder of images, a base model and a trigger word to a LoRA, every choice shown as the LoRA form."""
