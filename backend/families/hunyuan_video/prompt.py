"""HunyuanVideo's prompt template for its Llama text encoder (torch-free).

The diffusers HunyuanVideoPipeline and finetrainers' LlamaProcessor wrap every prompt in this chat template,
encode template + prompt, and crop the template's tokens (`crop_start`: 95 with the real tokenizer) from the
hidden states and the mask, keeping `max_sequence_length` (256) tokens of the prompt itself. The same text as
diffusers' `DEFAULT_PROMPT_TEMPLATE` (a test compares them), kept here so torch-free code can read it.
"""

from __future__ import annotations

PROMPT_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the following aspects: "
    "1. The main content and theme of the video."
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "4. background environment, light, style and atmosphere."
    "5. camera angles, movements, and transitions used in the video:<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
)
CROP_START = 95  # the template's tokens before the prompt with the real (Llama 3) tokenizer, BOS included
MAX_SEQUENCE_LENGTH = 256  # the pipeline's and finetrainers' prompt length (after the crop)
LLAMA_LAYERS_TO_SKIP = 2  # the hidden states of the third-to-last layer condition the transformer
CLIP_MAX_LENGTH = 77


def template_prefix() -> str:
    """The template's text before the prompt."""
    return PROMPT_TEMPLATE.split("{}", 1)[0]
