"""Training images for the benchmarks: smooth random pictures with captions, in a kohya folder
(and the metadata file fine-tuning reads them through)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def make_dataset(root: Path, count: int, resolution: int, repeats: int = 10, seed: int = 0) -> Path:
    """`root/<repeats>_sks dog/img<i>.png` (+ `.txt` captions), reused when already complete;
    returns the train_data_dir (`root`)."""
    folder = root / f"{repeats}_sks dog"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        path = folder / f"img{i}.png"
        coarse = rng.random((max(1, resolution // 16), max(1, resolution // 16), 3))
        if path.is_file() and path.with_suffix(".txt").is_file():
            continue
        image = Image.fromarray((coarse * 255).astype("uint8")).resize((resolution, resolution), Image.BILINEAR)
        image.save(path)
        path.with_suffix(".txt").write_text(f"a photo of sks dog, picture {i}", encoding="utf-8")
    return root


def write_metadata(root: Path) -> tuple[Path, Path]:
    """Fine-tuning metadata (sd-scripts' `--in_json`: {absolute image path: {"caption": ...}}) for the
    images `make_dataset` wrote under `root`; returns (image folder, metadata file)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if len(folders) != 1:
        raise ValueError(f"{root} should hold exactly one image folder, found {len(folders)}")
    metadata = {str(image.resolve()): {"caption": image.with_suffix(".txt").read_text(encoding="utf-8")}
                for image in sorted(folders[0].glob("*.png"))}
    path = root / "metadata.json"
    path.write_text(json.dumps(metadata, indent=1), encoding="utf-8")
    return folders[0], path
