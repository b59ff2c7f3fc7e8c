"""What a training method's own preflight (embedding_preflight.py, leco_preflight.py) writes into the run's plan:
a Protocol, so those modules need not import preflight.py, which imports them."""

from __future__ import annotations

from typing import Any, Protocol


class PlanView(Protocol):
    command: str
    errors: list[str]
    warnings: list[str]
    report: dict[str, Any]
