"""Convert a LoRA between the diffusers/PEFT layout and the sd-scripts (kohya) layout, or change its
precision.

    python -m backend.tools.convert_lora --model IN --save_to OUT [--to diffusers|kohya|comfyui]
        [--model_type sd1|sd2|sdxl|flux_dev|flux_schnell] [--save_precision float|fp16|bf16]

The input layout is recognised from the keys: `lora_unet_*`/`lora_te*` is sd-scripts' (what
A1111, ComfyUI and sd-scripts load, and what our trainer writes); `unet.*`/`text_encoder*.*` with
`lora_A`/`lora_B` (or the older `lora.down`/`lora.up` and attention-processor keys) is diffusers'
(`pipe.save_lora_weights`, diffusers' training scripts). --to defaults to the other layout; the same
layout with --save_precision only changes the precision. SD 1.x, 2.x and SDXL (U-Net by SGM names
in sd-scripts files, both text encoders), FLUX.1 (`transformer.*`; a fused qkv/linear1 module is one PEFT
module per diffusers layer, see `lora_diffusers.from_sd_scripts`). The family comes from the keys (and ss_base_model_version);
--model_type names it when keys cannot tell, and a --model_type the file contradicts (an SDXL LoRA
as sd1) is an error.

`--to comfyui` takes a video LoRA in the diffusers/PEFT layout (train_video's, finetrainers') and writes
ComfyUI's `diffusion_model.<original module>` names (video_convert.py).

Tensors are not touched (FLUX.1's fused modules: split by rows) and each module's scale is kept exactly (see `lora_diffusers`): the
diffusers file carries the alphas in its `lora_adapter_metadata`, so `pipe.load_lora_weights` gives
the same result as loading the sd-scripts file, and converting back gives the same keys and tensor
bytes. Other metadata (ss_*, modelspec.*) travels along. Only plain LoRA/LoCon modules have a
diffusers layout; LoHa/LoKr/DoRA files can be re-saved in the sd-scripts layout (precision) only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from backend.messages import msg
from backend.tools.cli.arg_checks import WEIGHT_SUFFIXES, input_file, output_file
from backend.tools.flags.lora import CONVERT_LORA
from backend.tools.flags.parser import build_parser as parser_of
from backend.tools.lora.tool_cli import ToolError, run_tool


def build_parser() -> argparse.ArgumentParser:
    return parser_of(CONVERT_LORA)  # the flags: backend/tools/flags/lora.py


def check_args(args: argparse.Namespace) -> None:
    """Everything that can be checked without torch: the paths and the output's suffix."""
    input_file(args.model, "--model", suffixes=WEIGHT_SUFFIXES, what=msg("tool.what_lora_file", "LoRA file"))
    output_file(args.save_to, "--save_to", suffixes=WEIGHT_SUFFIXES, inputs=[("--model", args.model)])
    if args.to == "diffusers" and Path(args.save_to).suffix.lower() != ".safetensors":
        raise ToolError(msg("tool.convert_diffusers_needs_safetensors",
                            "the diffusers layout keeps the alphas in safetensors metadata: save as .safetensors"))


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    check_args(args)
    from backend.tools.lora.lora_convert import convert_file  # torch: only once the arguments are sound

    convert_file(args)


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
