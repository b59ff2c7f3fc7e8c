"""Reproducible speed and memory measurements; each script prints one JSON object per result line."""
