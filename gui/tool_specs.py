"""The arguments of each command-line tool the GUI offers, as `ToolSpec`s (see gui/tool_form.py).

Defaults shown are the tools' own, except caption extensions (`.txt` in every GUI form, see
gui/captioning_specs.py); labels and help come from the catalogues
(`ui.toolarg.<tool>.<arg>`, `ui.toolhelp.<tool>.<arg>`). tests/gui/test_tool_specs.py checks
every flag here against the tool's real `--help`.
"""

from __future__ import annotations

from gui.captioning_specs import CAPTIONING_TOOLS, DATASET_TOOLS
from gui.tool_form import ToolArg, ToolSpec

PRECISIONS = ("float", "fp16", "bf16")
DEVICES = ("cpu", "cuda")

RESIZE_LORA = ToolSpec("resize_lora", (
    ToolArg("model", "file", required=True),
    ToolArg("save_to", "save", required=True),
    ToolArg("new_rank", "int", 4),
    ToolArg("new_conv_rank", "int"),
    ToolArg("dynamic_method", "choice", "", ("", "sv_ratio", "sv_fro", "sv_cumulative", "fro_ckpt", "spn_ckpt")),
    ToolArg("dynamic_param", "float"),
    ToolArg("base_model", "file"),
    ToolArg("save_precision", "choice", "float", PRECISIONS),
    ToolArg("device", "choice", "cpu", DEVICES),
    ToolArg("verbose", "bool", True),
))  # fmt: skip

MERGE_LORA = ToolSpec("merge_lora", (
    ToolArg("models", "list", required=True),
    ToolArg("ratios", "list"),
    ToolArg("save_to", "save", required=True),
    ToolArg("sd_model", "file"),
    ToolArg("precision", "choice", "float", PRECISIONS),
    ToolArg("save_precision", "choice", "", ("", *PRECISIONS)),
    ToolArg("new_rank", "int"),
    ToolArg("new_conv_rank", "int"),
    ToolArg("device", "choice", "cpu", DEVICES),
    ToolArg("concat", "bool"),
    ToolArg("no_metadata", "bool"),
))  # fmt: skip

EXTRACT_LORA = ToolSpec("extract_lora_from_models", (
    ToolArg("model_org", "file", required=True),
    ToolArg("model_tuned", "file", required=True),
    ToolArg("save_to", "save", required=True),
    ToolArg("dim", "int", 4),
    ToolArg("conv_dim", "int"),
    ToolArg("clamp_quantile", "float", 0.99),
    ToolArg("min_diff", "float", 0.01),
    ToolArg("load_precision", "choice", "float", PRECISIONS),
    ToolArg("save_precision", "choice", "float", PRECISIONS),
    ToolArg("device", "choice", "cpu", DEVICES),
    ToolArg("sdxl", "bool"),
    ToolArg("v2", "bool"),
    ToolArg("no_metadata", "bool"),
))  # fmt: skip

INSPECT_LORA = ToolSpec("inspect_lora", (
    ToolArg("file", "file", positional=True, required=True),
    ToolArg("top", "int", 10),
    ToolArg("json", "bool"),
))  # fmt: skip

CONVERT_LORA = ToolSpec("convert_lora", (
    ToolArg("model", "file", required=True),
    ToolArg("save_to", "save", required=True),
    ToolArg("to", "choice", "", ("", "diffusers", "kohya")),
    ToolArg("model_type", "choice", "", ("", "sd1", "sd2", "sdxl")),
    ToolArg("save_precision", "choice", "", ("", *PRECISIONS)),
))  # fmt: skip

LORA_TOOLS = (RESIZE_LORA, MERGE_LORA, EXTRACT_LORA, CONVERT_LORA, INSPECT_LORA)

# The fine-tuning metadata workflow (sd-scripts' fine_tune README), in the order it runs.
MERGE_CAPTIONS = ToolSpec("merge_captions_to_metadata", (
    ToolArg("train_data_dir", "folder", positional=True, required=True),
    ToolArg("out_json", "save", positional=True, required=True),
    ToolArg("in_json", "file"),
    ToolArg("caption_extension", "text", ".txt"),
    ToolArg("full_path", "bool"),
    ToolArg("recursive", "bool"),
))  # fmt: skip

MERGE_TAGS = ToolSpec("merge_dd_tags_to_metadata", (
    ToolArg("train_data_dir", "folder", positional=True, required=True),
    ToolArg("out_json", "save", positional=True, required=True),
    ToolArg("in_json", "file"),
    ToolArg("caption_extension", "text", ".txt"),
    ToolArg("full_path", "bool"),
    ToolArg("recursive", "bool"),
))  # fmt: skip

CLEAN_METADATA = ToolSpec("clean_captions_and_tags", (
    ToolArg("in_json", "file", positional=True, required=True),
    ToolArg("out_json", "save", positional=True, required=True),
    ToolArg("debug", "bool"),
))  # fmt: skip

PREPARE_LATENTS = ToolSpec("prepare_buckets_latents", (
    ToolArg("train_data_dir", "folder", positional=True, required=True),
    ToolArg("in_json", "file", positional=True, required=True),
    ToolArg("out_json", "save", positional=True, required=True),
    ToolArg("model_name_or_path", "file", positional=True, required=True),
    ToolArg("max_resolution", "text", "512,512"),
    ToolArg("batch_size", "int", 1),
    ToolArg("mixed_precision", "choice", "no", ("no", "fp16", "bf16")),
    ToolArg("min_bucket_reso", "int", 256),
    ToolArg("max_bucket_reso", "int", 1024),
    ToolArg("bucket_reso_steps", "int", 64),
    ToolArg("tokenizer_cache_dir", "folder"),
    ToolArg("bucket_no_upscale", "bool"),
    ToolArg("flip_aug", "bool"),
    ToolArg("full_path", "bool"),
    ToolArg("recursive", "bool"),
    ToolArg("v2", "bool"),
))  # fmt: skip

METADATA_TOOLS = (MERGE_CAPTIONS, MERGE_TAGS, CLEAN_METADATA, PREPARE_LATENTS)
ALL_TOOLS = LORA_TOOLS + METADATA_TOOLS + CAPTIONING_TOOLS + DATASET_TOOLS
