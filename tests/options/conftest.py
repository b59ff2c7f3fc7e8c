"""Fixtures: test-only options of every kind, and a writer for config files.

With `test_options` the schema holds only this area's options plus test options of every kind
(prefixed "test_"), so the tests do not depend on which options other areas have declared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.options import schema

from .helpers import CORE_OPTIONS, TEST_OPTIONS  # noqa: E402


@pytest.fixture
def test_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema of the model/config options plus the test options, whatever other areas declare."""
    real = schema.all_options()
    monkeypatch.setattr(schema, "_REGISTRY", {name: real[name] for name in CORE_OPTIONS})
    for option in TEST_OPTIONS:
        schema.declare(option)


@pytest.fixture
def write(tmp_path: Path):
    """write("run.toml", text) -> path of a file in the test's temporary folder."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write
