"""Progress panels poll their runner only while it runs, and only in the shown tab.

The page has a progress panel per training tab and per tool tab, each with a one-second `gr.Timer`. Each tick
is an event Gradio's frontend processes over the whole page (hundreds of fields; its lookups walk the layout
tree), even when nothing changed: one ticking panel kept Chromium's renderer at ~75% of a core on an idle
page and made every click take seconds on a busy machine (measured with benchmarks-style probes: 14-20 CPU-s
per 20 s idle while polling, 2.4 without). So a panel's timer ticks only while needed:

- it starts active (Gradio mounts a tab's components when the tab is first shown), and its first tick
  shows the runner's state; a tick that finds no run going sends that last state and stops the timer;
- a Run/Start button of the tab restarts its tab's timers once the run has started (`wake_after`);
- selecting a top-level tab restarts its timers (a run started in another tab shows at once) and stops the
  others'.

The run itself lives in the GUI process and goes on either way. Panels and buttons built inside
`TabPolling.tab(key)` are managed so; a panel built elsewhere (a test's own Blocks) polls all the time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import gradio as gr

_BUILDING: ContextVar[tuple[TabPolling, str] | None] = ContextVar("polling_tab", default=None)


@dataclass(frozen=True)
class PollTimer:
    timer: gr.Timer
    managed: bool  # started and stopped as the module docstring says; else it ticks all the time

    def outputs(self) -> list[gr.Timer]:
        """What a tick must list among its outputs to be able to stop the timer."""
        return [self.timer] if self.managed else []

    def after_tick(self, running: bool) -> tuple[Any, ...]:
        """The tick's value for `outputs()`: keep ticking while a run is going, else stop."""
        if not self.managed:
            return ()
        return (gr.skip() if running else gr.Timer(active=False),)


class TabPolling:
    """The poll timers and run-starting events of an app's top-level tabs."""

    def __init__(self) -> None:
        self.timers: dict[str, list[gr.Timer]] = {}
        self.wakers: dict[str, list[Any]] = {}

    @contextmanager
    def tab(self, key: str) -> Iterator[None]:
        token = _BUILDING.set((self, key))
        try:
            yield
        finally:
            _BUILDING.reset(token)

    def wire(self, tabs: Mapping[str, gr.Tab]) -> None:
        """Call inside the Blocks once every tab is built; `tabs`: key -> top-level Tab."""
        everything = [timer for timers in self.timers.values() for timer in timers]
        if not everything:
            return
        for key, tab in tabs.items():
            tab.select(lambda key=key: self._shown(key), outputs=everything, queue=False, show_progress="hidden")
        for key, events in self.wakers.items():
            timers = self.timers.get(key, [])
            for event in events if timers else ():
                event.then(_started(len(timers)), outputs=timers, queue=False, show_progress="hidden")

    def _shown(self, shown: str) -> list[gr.Timer]:
        return [gr.Timer(active=key == shown) for key, timers in self.timers.items() for _ in timers]


def _started(count: int) -> Callable[[], Any]:
    """An event function giving `count` timers (one output, or a list of them) active=True."""
    return lambda: gr.Timer(active=True) if count == 1 else [gr.Timer(active=True)] * count


def poll_timer(seconds: float) -> PollTimer:
    """A panel's poll timer, managed by the tab being built if any (see the module docstring)."""
    building = _BUILDING.get()
    timer = gr.Timer(seconds)
    if building is not None:
        polling, key = building
        polling.timers.setdefault(key, []).append(timer)
    return PollTimer(timer, managed=building is not None)


def wake_after(event: Any) -> None:
    """Restart the polling of the tab being built once `event` (the dependency a Start/Run click returned)
    is done: the run has started by then, so the first tick already sees it."""
    building = _BUILDING.get()
    if building is not None:
        polling, key = building
        polling.wakers.setdefault(key, []).append(event)
