"""Prefix tables: rename keys or module paths by their longest matching dotted prefix.

Every converter in this package is a table of ``(diffusers prefix, original prefix)`` pairs built
from a config; one lookup class serves both directions and works for parameter keys
(``...to_q.weight``) and module paths (``...to_q``) alike.
"""

from __future__ import annotations

from collections.abc import Iterable


class PrefixMap:
    """Bidirectional dotted-prefix renaming; the longest matching prefix wins."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.forward: dict[str, str] = {}
        self.backward: dict[str, str] = {}
        for src, dst in pairs:
            if src in self.forward or dst in self.backward:
                raise ValueError(f"duplicate prefix pair {src!r} -> {dst!r}")
            self.forward[src] = dst
            self.backward[dst] = src

    @staticmethod
    def _rename(key: str, table: dict[str, str]) -> str | None:
        head, tail = key, ""
        while True:
            if head in table:
                return table[head] + tail
            cut = head.rfind(".")
            if cut < 0:
                return None
            head, tail = head[:cut], head[cut:] + tail

    def to_original(self, key: str) -> str | None:
        return self._rename(key, self.forward)

    def to_diffusers(self, key: str) -> str | None:
        return self._rename(key, self.backward)
