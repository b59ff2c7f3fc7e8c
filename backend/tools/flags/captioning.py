"""The captioning and tagging tools' flags (sd-scripts' finetune/make_captions.py,
make_captions_by_git.py, tag_images_by_wd14_tagger.py; basic_caption is kohya_ss's Basic Captioning).

The image folder (positional) comes first, then the options people change most. `--no_progress`
is command line only: the GUI reads the progress lines.
"""

from __future__ import annotations

from backend.tools.flags.spec import TXT_CAPTIONS, Flag, ToolFlags

BLIP_MODEL = "Salesforce/blip-image-captioning-large"
GIT_MODEL = "microsoft/git-large-textcaps"
WD14_REPO = "SmilingWolf/wd-v1-4-convnext-tagger-v2"
# A form field cannot hold the default separator ", " (the forms strip spaces, so it would become ","):
# empty leaves the tool's default.
SEPARATOR_WHY = "the forms strip spaces, so ', ' would be passed as ','; an empty field leaves the tool's ', '"
NO_PROGRESS = Flag("no_progress", "bool", help="do not print @@progress lines", gui=False)


def _captioner(name: str, description: str, model: str, max_length: int, extra: tuple[Flag, ...]) -> ToolFlags:
    """BLIP and GIT share their command line (backend/tools/captioning/caption_runner.py)."""
    return ToolFlags(name, description, (
        Flag("train_data_dir", "folder", help="folder of images to caption", positional=True, required=True),
        Flag("model_id", "folder", model, help=f"Hugging Face model id or local model folder (default {model})"),
        Flag("caption_extension", "text", ".caption", help="extension of the caption files (default .caption)",
             aliases=("caption_extention",), gui_default=".txt", gui_why=TXT_CAPTIONS),
        Flag("batch_size", "int", 1, help="images per model call"),
        Flag("max_length", "int", max_length, help="longest caption, in tokens"),
        *extra,
        Flag("device", "text", help="torch device, e.g. cuda, cuda:1, cpu (default: cuda when available)"),
        Flag("max_data_loader_n_workers", "int",
             help="read images with this many background threads (default: in the main thread)"),
        Flag("recursive", "bool", help="also caption images in subfolders"),
        Flag("overwrite", "bool", help="replace existing caption files", exclusive="mode"),
        Flag("append", "bool", help="add the new caption after an existing one", exclusive="mode"),
        Flag("debug", "bool", help="print every caption"),
        NO_PROGRESS,
    ))  # fmt: skip


MAKE_CAPTIONS = _captioner("make_captions", "Caption images with BLIP.", BLIP_MODEL, 75, (
    Flag("min_length", "int", 5, help="shortest caption, in tokens"),
    Flag("top_p", "float", 0.9, help="top_p of nucleus sampling"),
    Flag("seed", "int", 42, help="seed for sampling"),
    Flag("beam_search", "bool", help="beam search (default: nucleus sampling)"),
    Flag("num_beams", "int", 1, help="beams for --beam_search"),
))  # fmt: skip

MAKE_CAPTIONS_BY_GIT = _captioner("make_captions_by_git", "Caption images with GIT.", GIT_MODEL, 50, (
    Flag("remove_words", "bool", help="remove phrases like 'with the words xxx' from the captions"),
))  # fmt: skip

TAG_IMAGES = ToolFlags("tag_images_by_wd14_tagger", "Tag images with a WD14 tagger (ONNX).", (
    Flag("train_data_dir", "folder", help="folder of images to tag", positional=True, required=True),
    Flag("repo_id", "text", WD14_REPO, help=f"tagger on the Hugging Face Hub (default {WD14_REPO}; v3 taggers such as "
         "SmilingWolf/wd-vit-tagger-v3 work too)"),
    Flag("model_dir", "folder", "wd14_tagger_model",
         help="where downloaded taggers are kept, or a folder holding model.onnx and selected_tags.csv"),
    Flag("caption_extension", "text", ".txt", help="extension of the tag files (default .txt)",
         aliases=("caption_extention",)),
    Flag("caption_separator", "text", ", ", help="between tags, spaces included (default ', ')", gui_default=None,
         gui_why=SEPARATOR_WHY),
    Flag("batch_size", "int", 1, help="images per model call"),
    Flag("thresh", "float", 0.35, help="confidence needed to add a tag"),
    Flag("general_threshold", "float", help="for general tags (default --thresh)"),
    Flag("character_threshold", "float", help="for character tags (default --thresh; above 1 turns character tags off)"),
    Flag("undesired_tags", "text", "", help="tags never to write, separated like the tags"),
    Flag("always_first_tags", "text", help="tags to put first when found, e.g. 1girl,1boy"),
    Flag("remove_underscore", "bool", help="write 'long hair' instead of 'long_hair'"),
    Flag("character_tags_first", "bool", help="character tags before general tags"),
    Flag("use_rating_tags", "bool", help="add the rating tag first", exclusive="rating"),
    Flag("use_rating_tags_as_last_tag", "bool", help="add the rating tag last", exclusive="rating"),
    Flag("recursive", "bool", help="also tag images in subfolders"),
    Flag("overwrite", "bool", help="replace existing tag files", exclusive="mode"),
    Flag("append_tags", "bool", help="add new tags to existing tag files", exclusive="mode"),
    Flag("frequency_tags", "bool", help="print how often each tag was written"),
    Flag("force_download", "bool", help="download the tagger again"),
    Flag("debug", "bool", help="print the tags of every image"),
    # Taken for sd-scripts command lines; ONNX is the only path here, so there is nothing to choose.
    Flag("onnx", "bool", help="accepted for sd-scripts compatibility: ONNX is always used", gui=False),
    NO_PROGRESS,
))  # fmt: skip

BASIC_CAPTION = ToolFlags("basic_caption", "Write or edit caption files: text, prefix/postfix, find/replace, tags.", (
    Flag("images_dir", "folder", help="folder of images", positional=True, required=True),
    Flag("caption_extension", "text", ".txt", help="extension of the caption files (default .txt)"),
    Flag("recursive", "bool", help="also edit captions in subfolders"),
    Flag("caption_text", "text", "", help="caption for images that have none"),
    Flag("overwrite", "bool", help="replace existing captions with --caption_text"),
    Flag("only_missing", "bool", help="only write captions for images that have none"),
    Flag("prefix", "text", "", help="text to put before each caption (not added twice)"),
    Flag("postfix", "text", "", help="text to put after each caption (not added twice)"),
    Flag("separator", "text", ", ", help="joins prefix/postfix to the caption; splits tags (default ', ')",
         gui_default=None, gui_why=SEPARATOR_WHY),
    Flag("find", "text", "", help="plain text to replace in each caption"),
    Flag("replace", "text", "", help="replacement for --find (empty: delete it)"),
    Flag("dry_run", "bool", help="print what would change, write nothing"),
    Flag("add_tag", "text", help="add this tag to every caption", exclusive="tag"),
    Flag("remove_tag", "text", help="remove this tag from every caption", exclusive="tag"),
    Flag("first", "bool", help="with --add_tag: put the tag first"),
))  # fmt: skip

TOOLS = (MAKE_CAPTIONS, MAKE_CAPTIONS_BY_GIT, TAG_IMAGES, BASIC_CAPTION)
