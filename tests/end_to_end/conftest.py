"""A tiny dataset in the sd-scripts folder convention, shared by the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import make_images


@pytest.fixture(scope="session")
def train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dataset") / "train"
    make_images(root / "2_sks dog", 3, sizes=[(64, 64), (96, 64), (64, 96)])
    return root
