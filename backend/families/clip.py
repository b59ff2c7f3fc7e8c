"""The CLIP tokenizers several families use, by the hub ids sd-scripts loads them from (torch-free)."""

from backend.families.declaration import HubTokenizer

CLIP_L = HubTokenizer("openai/clip-vit-large-patch14")  # SD 1.x, SDXL's first text encoder
CLIP_G = HubTokenizer("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", pad_with_bang=True)  # SDXL's second
