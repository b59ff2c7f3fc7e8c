"""Shared fixtures for the training building-block tests (CPU, tiny tensors)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def noise_scheduler():
    from backend.objectives.noise import create_noise_scheduler

    return create_noise_scheduler()


@pytest.fixture
def generator():
    import torch

    return torch.Generator().manual_seed(1234)
