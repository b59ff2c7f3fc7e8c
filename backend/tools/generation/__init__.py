"""Generating images from a base model with networks and embeddings: `python -m backend.tools.generate`."""
