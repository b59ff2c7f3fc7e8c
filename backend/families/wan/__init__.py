"""Wan 2.1 text-to-video (1.3B and 14B): a UMT5-conditioned video transformer over the Wan VAE's latents."""
