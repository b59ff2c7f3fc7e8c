"""The command-line tools the GUI offers, as forms (`ToolSpec`, see gui/tools/tool_form.py), built from the
tools' own flag declarations (backend/tools/flags/): what the tool takes is what the form shows.

Labels and help come from the catalogues (`ui.toolarg.<tool>.<arg>`, `ui.toolhelp.<tool>.<arg>`).
"""

from __future__ import annotations

from backend.tools.flags import lora, metadata
from gui.tools.captioning_specs import CAPTIONING_TOOLS, DATASET_TOOLS
from gui.tools.tool_form import tool_spec

RESIZE_LORA = tool_spec(lora.RESIZE_LORA)
MERGE_LORA = tool_spec(lora.MERGE_LORA)
EXTRACT_LORA = tool_spec(lora.EXTRACT_LORA)
CONVERT_LORA = tool_spec(lora.CONVERT_LORA)
INSPECT_LORA = tool_spec(lora.INSPECT_LORA)
LORA_TOOLS = (RESIZE_LORA, MERGE_LORA, EXTRACT_LORA, CONVERT_LORA, INSPECT_LORA)

# The fine-tuning metadata workflow (sd-scripts' fine_tune README), in the order it runs.
METADATA_TOOLS = tuple(tool_spec(tool) for tool in metadata.TOOLS)
ALL_TOOLS = LORA_TOOLS + METADATA_TOOLS + CAPTIONING_TOOLS + DATASET_TOOLS
