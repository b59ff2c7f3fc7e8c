"""FLUX.1 (dev, schnell): a flow-matching transformer with CLIP-L (pooled) and T5-XXL conditioning."""
