"""SD 1.x and SD 2.x: one CLIP text encoder, a U-Net, DDPM (epsilon, or v for SD 2.x 768)."""
