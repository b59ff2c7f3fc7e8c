"""Shared fixtures for the training building-block tests (CPU, tiny tensors)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# pytest's default import mode puts only tests/ on sys.path; the code under test lives at the repo root.
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def noise_scheduler():
    from backend.training.noise import create_noise_scheduler

    return create_noise_scheduler()


@pytest.fixture
def generator():
    import torch

    return torch.Generator().manual_seed(1234)
