"""Chroma: lodestone-rocks' FLUX.1 [schnell] derivative (T5-XXL only, modulations from an approximator)."""
