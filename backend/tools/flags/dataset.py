"""The dataset tools' flags: prepare_dataset (kohya_ss's Dreambooth folder preparation), verify_dataset and
verify_video_dataset (ours)."""

from __future__ import annotations

from backend import families
from backend.tools.dataset.dataset_layout import LinkMode
from backend.tools.flags.spec import TXT_CAPTIONS, Flag, ToolFlags

PREPARE_DATASET = ToolFlags("prepare_dataset", "Build a <repeats>_<instance> <class> training folder from image "
                            "folders.", (
    Flag("out", "folder", help="destination folder (img/, reg/, model/ and log/ are created in it)", positional=True,
         required=True),
    # The tool says what is missing itself, with an example (argparse's line is English only).
    Flag("concept", "rows", row=("SRC", "INSTANCE", "CLASS"), required=True, required_by="tool",
         help="a folder of training images, its instance token (e.g. sks) and class (e.g. dog); repeatable"),
    Flag("reg", "rows", row=("SRC", "CLASS"), help="a folder of regularization images and their class; repeatable"),
    Flag("repeats", "int", help="repeats of every concept (default 10)"),
    Flag("balance", "int", metavar="IMAGES_PER_EPOCH",
         help="instead of --repeats: repeats = round(IMAGES_PER_EPOCH / images) per concept"),
    Flag("reg_repeats", "int", 1, help="repeats of the regularization folders (default 1)"),
    Flag("link", "choice", "copy", tuple(mode.value for mode in LinkMode),
         help="copy the files (default), or hard-link / symlink them to save space"),
    Flag("caption_extension", "text", ".txt",
         help="caption files to count and carry (default .txt; .txt and .caption files are always carried)"),
    Flag("dry_run", "bool", help="print the plan, write nothing"),
    Flag("group_by_aspect", "bool", help="one subfolder per aspect-ratio bucket, and dataset.toml"),
    Flag("resolution", "text", "512", help="training resolution for --group_by_aspect (N or W,H)"),
    Flag("bucket_no_upscale", "bool"),
    Flag("min_bucket_reso", "int", 256),
    Flag("max_bucket_reso", "int", 1024),
    Flag("bucket_reso_steps", "int", 64),
    Flag("no_progress", "bool", help="do not print @@progress lines", gui=False),
))  # fmt: skip

VERIFY_DATASET = ToolFlags("verify_dataset", "Check a training folder: images, captions, buckets.", (
    Flag("train_data_dir", "folder", help="the folder holding <repeats>_<tokens> folders (or images)", positional=True,
         required=True),
    Flag("reg_data_dir", "folder", help="regularization folder, checked the same way"),
    Flag("caption_extension", "text", ".caption", help="as passed to the trainer (its default .caption)",
         gui_default=".txt", gui_why=TXT_CAPTIONS),
    Flag("resolution", "text", "512", help="training resolution, N or W,H (default 512)"),
    Flag("batch_size", "int", 1, help="train batch size, for the batch count per bucket"),
    Flag("min_size", "int", 256, help="report images whose short side is below this (pixels)"),
    Flag("no_bucket", "bool", help="check without aspect-ratio buckets (enable_bucket off)"),
    Flag("bucket_no_upscale", "bool"),
    Flag("min_bucket_reso", "int", 256),
    Flag("max_bucket_reso", "int", 1024),
    Flag("bucket_reso_steps", "int", 64),
    Flag("json", "bool", help="print the report as one JSON object", gui=False),  # the GUI shows the text report
))  # fmt: skip

# finetrainers' --model_name of each video family (the declarations are data: no torch for the GUI).
VIDEO_MODEL_NAMES = tuple(d.video_model_name for d in families.DECLARATIONS if d.is_video)

VERIFY_VIDEO_DATASET = ToolFlags("verify_video_dataset", "Check a video dataset as train_video reads it: clips, "
                                 "captions, frame and size buckets.", (
    Flag("data_root", "folder", help="a folder of videos with same-name .txt captions, or with prompts.txt and "
         "videos.txt (finetrainers' layouts)", positional=True, required=True),
    Flag("model_name", "choice", VIDEO_MODEL_NAMES[0], VIDEO_MODEL_NAMES,
         help="the model the data is for: its VAE decides which frame counts and sizes are possible"),
    Flag("video_resolution_buckets", "text", help="buckets as FxHxW, space-separated (e.g. 49x512x768 "
         "81x480x832); default: the model's usual buckets"),
    Flag("dataset_file", "file", help="a CSV/JSON/JSONL table of videos and captions instead of the folder's files"),
    Flag("video_column", "text", help="the table's or videos.txt's video column (finetrainers' --video_column)"),
    Flag("caption_column", "text", help="the table's or prompts.txt's caption column (finetrainers' --caption_column)"),
    Flag("id_token", "text", help="a token put before every caption, as training would"),
    Flag("json", "bool", help="print the report as one JSON object", gui=False),  # the GUI shows the text report
))  # fmt: skip

TOOLS = (PREPARE_DATASET, VERIFY_DATASET, VERIFY_VIDEO_DATASET)
