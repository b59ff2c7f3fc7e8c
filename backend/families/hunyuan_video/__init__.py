"""HunyuanVideo text-to-video: a Llama- and CLIP-conditioned dual/single-stream video transformer."""
