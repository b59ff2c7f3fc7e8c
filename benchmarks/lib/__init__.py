"""Helpers shared by the benchmark scripts: models, datasets, output lines, memory, FLOPs."""
