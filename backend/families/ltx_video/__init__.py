"""LTX-Video (Lightricks, 0.9.x): a text-to-video DiT over a 32x/8x-compressing causal video VAE, T5 captions."""
