"""Shared fixtures: the tiny models, generated once per test session."""

from __future__ import annotations

import pytest

from tests.tiny_models import TinyModels


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return TinyModels(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(autouse=True)
def _english_messages(monkeypatch: pytest.MonkeyPatch):
    """Messages in English unless a test asks otherwise (building the Japanese GUI sets the language)."""
    from backend import messages

    monkeypatch.delenv(messages.LANGUAGE_ENV, raising=False)
    yield
    messages.set_language(None)
