"""Shared fixtures: the tiny models, generated once per test session."""

from __future__ import annotations

import pytest

from tests.tiny_models import TinyModels


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return TinyModels(tmp_path_factory.mktemp("tiny-models"))
