"""The captioning, tagging and dataset tools' arguments, as `ToolSpec`s (see gui/tool_form.py).

The image folder (positional) comes first, then the options people change most. Defaults shown
are the tools' own, except the caption extension: every GUI form starts with `.txt` (as kohya_ss's
GUI does, and what the trainer's forms read), while the commands keep sd-scripts' `.caption` for
BLIP/GIT. An empty field leaves the tool's default (e.g. the tag separator `", "`,
which a form field could not hold: the forms strip spaces). `--no_progress` and `--json` are
left out: the GUI needs the progress lines and shows the log as text. Labels and help come from
the catalogues (`ui.toolarg.<tool>.<arg>`, `ui.toolhelp.<tool>.<arg>`); tests/gui/test_tool_form.py
checks every flag against the tool's real `--help` (through `gui.tool_specs.ALL_TOOLS`).
"""

from __future__ import annotations

from gui.tool_form import ToolArg, ToolSpec


def _captioner(name: str, model: str, max_length: int, extra: tuple[ToolArg, ...]) -> ToolSpec:
    """BLIP and GIT share their command line (backend/tools/caption_runner.py)."""
    return ToolSpec(name, (
        ToolArg("train_data_dir", "folder", positional=True, required=True),
        ToolArg("model_id", "folder", model),
        ToolArg("caption_extension", "text", ".txt"),
        ToolArg("batch_size", "int", 1),
        ToolArg("max_length", "int", max_length),
        *extra,
        ToolArg("device", "text"),
        ToolArg("max_data_loader_n_workers", "int"),
        ToolArg("recursive", "bool"),
        ToolArg("overwrite", "bool"),
        ToolArg("append", "bool"),
        ToolArg("debug", "bool"),
    ))  # fmt: skip


MAKE_CAPTIONS = _captioner("make_captions", "Salesforce/blip-image-captioning-large", 75, (
    ToolArg("min_length", "int", 5),
    ToolArg("top_p", "float", 0.9),
    ToolArg("seed", "int", 42),
    ToolArg("beam_search", "bool"),
    ToolArg("num_beams", "int", 1),
))  # fmt: skip

MAKE_CAPTIONS_BY_GIT = _captioner("make_captions_by_git", "microsoft/git-large-textcaps", 50, (
    ToolArg("remove_words", "bool"),
))  # fmt: skip

TAG_IMAGES_BY_WD14_TAGGER = ToolSpec("tag_images_by_wd14_tagger", (
    ToolArg("train_data_dir", "folder", positional=True, required=True),
    ToolArg("repo_id", "text", "SmilingWolf/wd-v1-4-convnext-tagger-v2"),
    ToolArg("model_dir", "folder", "wd14_tagger_model"),
    ToolArg("caption_extension", "text", ".txt"),
    ToolArg("caption_separator", "text"),
    ToolArg("batch_size", "int", 1),
    ToolArg("thresh", "float", 0.35),
    ToolArg("general_threshold", "float"),
    ToolArg("character_threshold", "float"),
    ToolArg("undesired_tags", "text"),
    ToolArg("always_first_tags", "text"),
    ToolArg("remove_underscore", "bool"),
    ToolArg("character_tags_first", "bool"),
    ToolArg("use_rating_tags", "bool"),
    ToolArg("use_rating_tags_as_last_tag", "bool"),
    ToolArg("recursive", "bool"),
    ToolArg("overwrite", "bool"),
    ToolArg("append_tags", "bool"),
    ToolArg("frequency_tags", "bool"),
    ToolArg("force_download", "bool"),
    ToolArg("debug", "bool"),
))  # fmt: skip

BASIC_CAPTION = ToolSpec("basic_caption", (
    ToolArg("images_dir", "folder", positional=True, required=True),
    ToolArg("caption_extension", "text", ".txt"),
    ToolArg("recursive", "bool"),
    ToolArg("caption_text", "text"),
    ToolArg("overwrite", "bool"),
    ToolArg("only_missing", "bool"),
    ToolArg("prefix", "text"),
    ToolArg("postfix", "text"),
    ToolArg("separator", "text"),
    ToolArg("find", "text"),
    ToolArg("replace", "text"),
    ToolArg("dry_run", "bool"),
    ToolArg("add_tag", "text"),
    ToolArg("remove_tag", "text"),
    ToolArg("first", "bool"),
))  # fmt: skip

PREPARE_DATASET = ToolSpec("prepare_dataset", (
    ToolArg("out", "folder", positional=True, required=True),
    ToolArg("concept", "rows", required=True, row_size=3),
    ToolArg("reg", "rows", row_size=2),
    ToolArg("repeats", "int"),
    ToolArg("balance", "int"),
    ToolArg("reg_repeats", "int", 1),
    ToolArg("link", "choice", "copy", ("copy", "hardlink", "symlink")),
    ToolArg("caption_extension", "text", ".txt"),
    ToolArg("dry_run", "bool"),
    ToolArg("group_by_aspect", "bool"),
    ToolArg("resolution", "text", "512"),
    ToolArg("bucket_no_upscale", "bool"),
    ToolArg("min_bucket_reso", "int", 256),
    ToolArg("max_bucket_reso", "int", 1024),
    ToolArg("bucket_reso_steps", "int", 64),
))  # fmt: skip

VERIFY_DATASET = ToolSpec("verify_dataset", (
    ToolArg("train_data_dir", "folder", positional=True, required=True),
    ToolArg("reg_data_dir", "folder"),
    ToolArg("caption_extension", "text", ".txt"),
    ToolArg("resolution", "text", "512"),
    ToolArg("batch_size", "int", 1),
    ToolArg("min_size", "int", 256),
    ToolArg("no_bucket", "bool"),
    ToolArg("bucket_no_upscale", "bool"),
    ToolArg("min_bucket_reso", "int", 256),
    ToolArg("max_bucket_reso", "int", 1024),
    ToolArg("bucket_reso_steps", "int", 64),
))  # fmt: skip

CAPTIONING_TOOLS = (MAKE_CAPTIONS, MAKE_CAPTIONS_BY_GIT, TAG_IMAGES_BY_WD14_TAGGER, BASIC_CAPTION)
DATASET_TOOLS = (PREPARE_DATASET, VERIFY_DATASET)
