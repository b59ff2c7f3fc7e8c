"""Preparing a dataset: the captioning and dataset-tool tabs and the caption editor."""
