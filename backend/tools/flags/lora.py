"""The LoRA tools' flags: resize, merge, extract, convert, inspect (sd-scripts' networks/resize_lora.py,
merge_lora.py + svd_merge_lora.py, extract_lora_from_models.py; convert and inspect are ours)."""

from __future__ import annotations

from backend.families import names
from backend.tools.flags.spec import FINITE, Flag, Range, ToolFlags

PRECISIONS = ("float", "fp16", "bf16")
# Rank choices of resize_lora (implemented in lowrank.py; named here so its parser needs no torch).
DYNAMIC_METHODS = ("sv_ratio", "sv_fro", "sv_cumulative")
BASE_METHODS = ("fro_ckpt", "spn_ckpt")  # relative to the base model's layer; need --base_model
LAYOUTS = ("diffusers", "kohya", "comfyui")  # convert_lora --to (comfyui: video LoRAs, video_convert.py)
MODEL_TYPES = names()  # convert_lora --model_type: the families
# --device takes any torch device (cuda:1 too); the GUI offers these two.
DEVICES = ("cpu", "cuda")
RANK = Range(low=1)  # a rank below 1 writes rank-0 modules, whose alpha loaders divide by 0


def _device() -> Flag:
    return Flag("device", "text", "cpu", help="cpu or cuda", suggestions=DEVICES)


RESIZE_LORA = ToolFlags("resize_lora", "Resize a LoRA/LoCon file to a lower rank (sd-scripts' networks/resize_lora.py "
                        "flags, plus thresholds relative to the base checkpoint's weights).", (
    Flag("model", "file", help="LoRA/LoCon file to resize", required=True),
    Flag("save_to", "save", help="output file (.safetensors, .ckpt or .pt)", required=True),
    Flag("new_rank", "int", 4, help="new rank (maximum rank for dynamic methods)", range=RANK),
    Flag("new_conv_rank", "int", help="new rank of 3x3 conv modules (default: --new_rank)", range=RANK),
    Flag("dynamic_method", "choice", choices=DYNAMIC_METHODS + BASE_METHODS,
         help="choose each module's rank (at most --new_rank); fro_ckpt/spn_ckpt need --base_model"),
    Flag("dynamic_param", "float", range=FINITE,
         help="sv_ratio: ratio; sv_fro/sv_cumulative: fraction; fro_ckpt/spn_ckpt: log10 threshold"),
    Flag("base_model", "file",
         help="checkpoint the LoRA was trained on (diffusers folder or single file), for fro_ckpt/spn_ckpt"),
    Flag("save_precision", "choice", "float", PRECISIONS),
    _device(),
    Flag("verbose", "bool", help="print every module's rank and retained norm", gui_default=True,
         gui_why="in the GUI the per-module report lands in the log, where it is read after the run (kohya_ss's "
         "Resize LoRA form has verbose logging on too); a terminal keeps sd-scripts' short default"),
))  # fmt: skip

MERGE_LORA = ToolFlags("merge_lora", "Merge LoRAs into a checkpoint, or into one LoRA (sd-scripts' "
                       "networks/merge_lora.py flags).", (
    Flag("models", "list", help="LoRA files to merge", required=True),
    Flag("ratios", "list", item="float", help="one ratio per model (default 1.0)", range=FINITE),
    Flag("save_to", "save", help="output file (or diffusers folder for a folder --sd_model)", required=True),
    Flag("sd_model", "file", help="checkpoint to bake the LoRAs into (omit to merge LoRAs)"),
    Flag("precision", "choice", "float", PRECISIONS, help="precision of the merge"),
    Flag("save_precision", "choice", choices=PRECISIONS,
         help="precision of the saved file (default: the checkpoint's, float for LoRAs)"),
    Flag("new_rank", "int", help="LoRA output (SVD): rank of the result", range=RANK),
    Flag("new_conv_rank", "int", help="LoRA output (SVD): rank of 3x3 convs", range=RANK),
    _device(),
    Flag("concat", "bool", help="LoRA output: concatenate ranks instead of SVD"),
    Flag("no_metadata", "bool", help="LoRA output: keep only the minimal ss_* keys"),
))  # fmt: skip

EXTRACT_LORA = ToolFlags("extract_lora_from_models", "Extract a LoRA from the difference of two models (sd-scripts' "
                         "networks/extract_lora_from_models.py).", (
    Flag("model_org", "file", help="original model (diffusers folder or single file)", required=True),
    Flag("model_tuned", "file", help="tuned model of the same architecture", required=True),
    Flag("save_to", "save", help="output LoRA file", required=True),
    Flag("dim", "int", 4, help="rank of linear and 1x1 modules", range=RANK),
    Flag("conv_dim", "int", help="rank of 3x3 convs (default: none extracted)", range=RANK),
    # Above 0: at 0 every weight is clamped to one value and the LoRA is destroyed.
    Flag("clamp_quantile", "float", 0.99, range=Range(0.0, 1.0, low_open=True)),
    Flag("min_diff", "float", 0.01, help="skip layers whose max |diff| is below this", range=FINITE),
    Flag("load_precision", "choice", "float", PRECISIONS),
    Flag("save_precision", "choice", "float", PRECISIONS),
    _device(),
    Flag("sdxl", "bool", help="expect SDXL models (detected anyway)"),
    Flag("v2", "bool", help="expect SD 2.x models (detected anyway)"),
    Flag("no_metadata", "bool", help="keep only the minimal ss_* keys"),
))  # fmt: skip

CONVERT_LORA = ToolFlags("convert_lora", "Convert a LoRA between the diffusers/PEFT layout and the sd-scripts (kohya) "
                         "layout, or change its precision.", (
    Flag("model", "file", help="LoRA file in either layout (.safetensors, .ckpt, .pt, .bin)", required=True),
    Flag("save_to", "save", help="output file (.safetensors; diffusers layout needs it)", required=True),
    Flag("to", "choice", choices=LAYOUTS, help="layout of the output (default: the other layout than the input's); "
         "comfyui: a video LoRA (diffusers/PEFT keys) with ComfyUI's diffusion_model.<original module> names"),
    Flag("model_type", "choice", choices=MODEL_TYPES,
         help="the LoRA's base model family (default: detected from the keys)"),
    Flag("save_precision", "choice", choices=PRECISIONS, help="precision of the saved weights (default: unchanged)"),
))  # fmt: skip

INSPECT_LORA = ToolFlags("inspect_lora", "Describe a LoRA-family file (sd-scripts' check_lora_weights.py, extended).", (
    Flag("file", "file", help="LoRA file (.safetensors, .ckpt, .pt)", positional=True, required=True),
    Flag("top", "int", 10, help="how many of the most frequent tags to list", range=Range(low=0)),
    Flag("json", "bool", help="print one JSON object"),
))  # fmt: skip

TOOLS = (RESIZE_LORA, MERGE_LORA, EXTRACT_LORA, CONVERT_LORA, INSPECT_LORA)
