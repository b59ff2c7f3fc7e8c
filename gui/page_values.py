"""Pages served with values computed when they are served (a training form as it was left), instead of a page-load
event that sets them.

Why: Gradio's frontend keeps a loading status for every component any event has output to, and on every status
change of every later event refreshes all of them, each found by a walk over the page's layout. A load event that
restored the ~250 fields of a training form made every edit's autosave and every progress poll cost ~0.2 s more
browser CPU (10 edits: 3.2 CPU-s with the load event, 0.95 without; docs/performance.md, "GUI pages"). Values in
the served page config are the components' initial values, which the frontend tracks no status for.

`PageValuesBlocks.config` (what Gradio reads to serve a page, its `/config` and API info) is the config built at
launch with the updates of every `values_when_served` function applied, each a {component: value or update}
mapping as an event would return: plain values, and component updates (`gr.Column(visible=...)`,
`gr.Dropdown(choices=..., value=...)`). The functions run on each read, so they must be quick and free of side
effects. A dropdown given extra choices keeps them on the server too (Gradio checks every later event's value
against the choices it knows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr
from gradio.blocks import Block
from gradio.data_classes import GradioModel, GradioRootModel

ServedValues = Callable[[], Mapping[Block, Any]]


def _props(block: Block, value: Any) -> dict[str, Any]:
    """The config props that `value` (as an event output of `block`) changes."""
    if isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1:  # gr.skip()
        return {}
    if isinstance(value, Block):  # a component update: built as Gradio builds one for an event's output
        given = {key: arg for key, arg in value.constructor_args.items() if key != "render"}
        updated = block.__class__(**{**block.constructor_args, **given, "render": False})
        if isinstance(block, gr.Dropdown) and "choices" in given:
            block.choices = updated.choices
        config = updated.get_config()
        return {key: config[key] for key in given if key in config}
    processed = block.postprocess(value)
    if isinstance(processed, GradioModel | GradioRootModel):
        processed = processed.model_dump()
    return {"value": processed}


def with_values(config: dict[str, Any], updates: Mapping[Block, Any]) -> dict[str, Any]:
    """A copy of a Blocks config whose components carry `updates` (the original is left as it is)."""
    props = {block._id: _props(block, value) for block, value in updates.items()}
    components = [
        {**entry, "props": {**entry.get("props", {}), **props[entry["id"]]}} if props.get(entry["id"]) else entry
        for entry in config["components"]
    ]
    return {**config, "components": components}


class PageValuesBlocks(gr.Blocks):
    """A Blocks whose served pages carry the values of its `values_when_served` functions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._served_values: list[ServedValues] = []
        self._launch_config: dict[str, Any] | None = None
        super().__init__(*args, **kwargs)

    def values_when_served(self, values: ServedValues) -> None:
        self._served_values.append(values)

    @property
    def config(self) -> dict[str, Any] | None:  # type: ignore[override]
        config = self._launch_config
        if config is None:
            return None
        for values in self._served_values:
            config = with_values(config, values())
        return config

    @config.setter
    def config(self, value: dict[str, Any] | None) -> None:
        self._launch_config = value
