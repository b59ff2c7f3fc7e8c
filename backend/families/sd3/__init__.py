"""Stable Diffusion 3.5 (medium, large): an MMDiT flow-matching transformer with CLIP-L, CLIP-G and T5-XXL."""
