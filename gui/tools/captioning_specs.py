"""The captioning, tagging and dataset tools as forms (`ToolSpec`, see gui/tools/tool_form.py), built from
the tools' flag declarations (backend/tools/flags/captioning.py, dataset.py).

Every form starts with `.txt` captions where the command keeps sd-scripts' `.caption` (declared
there as the flag's `gui_default`, with the reason); an empty field leaves the tool's default
(e.g. the tag separator `", "`, which a form field could not hold: the forms strip spaces).
`--no_progress` and `--json` are command line only: the GUI reads the progress lines and shows the
log as text.
"""

from __future__ import annotations

from backend.tools.flags import captioning, dataset
from gui.tools.tool_form import tool_spec

MAKE_CAPTIONS = tool_spec(captioning.MAKE_CAPTIONS)
MAKE_CAPTIONS_BY_GIT = tool_spec(captioning.MAKE_CAPTIONS_BY_GIT)
TAG_IMAGES_BY_WD14_TAGGER = tool_spec(captioning.TAG_IMAGES)
BASIC_CAPTION = tool_spec(captioning.BASIC_CAPTION)
PREPARE_DATASET = tool_spec(dataset.PREPARE_DATASET)
VERIFY_DATASET = tool_spec(dataset.VERIFY_DATASET)
VERIFY_VIDEO_DATASET = tool_spec(dataset.VERIFY_VIDEO_DATASET)

CAPTIONING_TOOLS = (MAKE_CAPTIONS, MAKE_CAPTIONS_BY_GIT, TAG_IMAGES_BY_WD14_TAGGER, BASIC_CAPTION)
DATASET_TOOLS = (PREPARE_DATASET, VERIFY_DATASET, VERIFY_VIDEO_DATASET)
