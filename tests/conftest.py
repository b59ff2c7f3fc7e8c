"""Shared fixtures: the tiny models, generated once per test session. Under pytest-xdist (setup/test.sh runs a
worker per core) every worker and the trainers it starts compute on one thread: two workers' default
thread pools spinning against each other on two cores made a tiny model's steps take seconds, not
milliseconds (measured: 8 FLUX.1 steps 25 s -> 0.3 s)."""

from __future__ import annotations

import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first (the browser tests, then the training runs): pytest-xdist hands out whole files
    in this order, so the last file to start is a short one and the workers finish together."""
    def weight(item: pytest.Item) -> int:
        path = item.nodeid
        return 0 if "/test_browser" in path else 1 if path.startswith("tests/end_to_end/") else 2

    items.sort(key=weight)
