"""cache_latents.py still caches through the trainer's code and prints a sane result line."""

from __future__ import annotations

from pathlib import Path


def test_cache_latents_tiny(bench, bench_work_dir: Path) -> None:
    lines, _ = bench("cache_latents.py", "--images", "3", "--device", "cpu", "--work-dir", str(bench_work_dir))
    assert len(lines) == 1
    line = lines[0]
    assert line["benchmark"] == "cache_latents" and line["images"] == 3 and line["device"] == "cpu"
    assert line["seconds"] > 0 and line["images_per_s"] > 0 and 0.05 < line["peak_rss_gib"] < 16
