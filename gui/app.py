"""The Gradio application shell: builds the Blocks that every tab plugs into.

The GUI process stays light: nothing here (or in any gui/ module) imports torch, diffusers or
transformers; training and tools run as subprocesses against backend/.
"""

from __future__ import annotations

import platform

import gradio as gr

from backend.options.schema import ALL_COMMANDS, options_for

APP_TITLE = "Kohya LoRA Trainer"


def environment_summary() -> str:
    """What this installation offers, read from the option schema (as data, without torch)."""
    rows = "\n".join(f"| `{command}` | {len(options_for(command))} |" for command in ALL_COMMANDS)
    return (
        f"Python {platform.python_version()} on {platform.system()}.\n\n"
        "| trainer command | options |\n|---|---|\n" + rows
    )


def build_app() -> gr.Blocks:
    with gr.Blocks(title=APP_TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {APP_TITLE}")
        with gr.Tab("About"):
            gr.Markdown(environment_summary())
    return app
