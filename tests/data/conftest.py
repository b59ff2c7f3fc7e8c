"""Small generated datasets for the dataset-layer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import make_image


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    """train/10_sks dog (3 captioned images) + train/2_cat (2 images, no captions)."""
    root = tmp_path / "train"
    for i in range(3):
        make_image(root / "10_sks dog" / f"img{i}.png", (96, 64))
        (root / "10_sks dog" / f"img{i}.caption").write_text(f"sks dog, tag{i}, outdoors\nsecond line\n")
    for i in range(2):
        make_image(root / "2_cat" / f"c{i}.jpg", (64, 96))
    return root
