"""Tiny models generated on demand, once per test session (each in well under a second)."""

from __future__ import annotations

from pathlib import Path

from devtools.make_tiny_model import TinyModel, make_tiny_model


class TinyModels:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[tuple[str, bool], TinyModel] = {}

    def get(self, arch: str, single_file: bool = False) -> TinyModel:
        key = (arch, single_file)
        if key not in self._cache:
            out = self.root / f"{arch}{'-single' if single_file else ''}"
            self._cache[key] = make_tiny_model(arch, out, single_file=single_file, seed=1)
        return self._cache[key]
