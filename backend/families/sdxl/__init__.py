"""SDXL base: two CLIP text encoders, a U-Net with size/crop conditioning, DDPM epsilon."""
