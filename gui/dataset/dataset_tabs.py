"""The Captioning, Dataset preparation and Caption editor tabs.

Captioning (BLIP, GIT, WD14 tagger, basic captioning) and dataset preparation are command-line
tools (`backend/tools`), shown as tool forms (gui/tools/tools_tab.py) that run one at a time through
the tool runner; the caption editor (gui/dataset/caption_editor.py) works in the GUI process, without
torch. Each builder fills the current `gr.Tab`; gui/app.py opens the tabs.
"""

from __future__ import annotations

from collections.abc import Callable

from gui.dataset.caption_editor import CaptionEditor, build_caption_editor
from gui.i18n import Translator
from gui.tools.captioning_specs import CAPTIONING_TOOLS, DATASET_TOOLS
from gui.tools.tool_form import ToolForm
from gui.tools.tools_tab import build_tools_tab

Browse = Callable[[str, bool], str] | None


def build_captioning_tab(t: Translator, browse: Browse) -> dict[str, ToolForm]:
    """Sub-tabs BLIP, GIT, WD14 tagger and Basic captioning, then the tool runner's panel."""
    return build_tools_tab(t, CAPTIONING_TOOLS, browse, "captioning")


def build_dataset_tab(t: Translator, browse: Browse) -> dict[str, ToolForm]:
    """Sub-tabs Prepare dataset and Verify dataset, then the tool runner's panel."""
    return build_tools_tab(t, DATASET_TOOLS, browse, "dataset")


def build_caption_editor_tab(t: Translator, browse: Browse) -> CaptionEditor:
    return build_caption_editor(t, browse)
