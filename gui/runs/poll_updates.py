"""Send a polled panel only what changed.

Every progress panel polls its runner each second, and a page has several (both training tabs and the
tool tabs). Re-sending unchanged status, progress and report texts made the browser re-render a page of
hundreds of fields every second while nothing ran: a busy renderer for every user, and seconds per click
on a loaded machine. Unchanged values go out as `gr.skip()`, which leaves the page as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr


def changed_only(values: Sequence[Any], last: Sequence[Any] | None) -> list[Any]:
    """`values`, with `gr.skip()` in place of each one equal to what was sent last (`last`; None: nothing yet)."""
    if last is None or len(last) != len(values):
        return list(values)
    return [gr.skip() if value == before else value for value, before in zip(values, last, strict=True)]
