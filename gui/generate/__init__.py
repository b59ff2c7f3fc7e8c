"""The Generate page: images from a base model with networks and embeddings, X/Y grids (backend.tools.generate)."""
