"""The fine-tuning metadata tools' flags, in the order the workflow runs them (sd-scripts'
finetune/merge_captions_to_metadata.py, merge_dd_tags_to_metadata.py, clean_captions_and_tags.py,
prepare_buckets_latents.py)."""

from __future__ import annotations

from backend.tools.flags.spec import TXT_CAPTIONS, Flag, Range, ToolFlags

MIXED_PRECISIONS = ("no", "fp16", "bf16")  # prepare_buckets_latents --mixed_precision


def _merge(name: str, description: str, extension: str, aliases: tuple[str, ...] = ()) -> ToolFlags:
    """merge_captions_to_metadata and merge_dd_tags_to_metadata share their command line."""
    gui_extension = {} if extension == ".txt" else {"gui_default": ".txt", "gui_why": TXT_CAPTIONS}
    return ToolFlags(name, description, (
        Flag("train_data_dir", "folder", help="folder with the images and their text files", positional=True,
             required=True),
        Flag("out_json", "save", help="metadata file to write", positional=True, required=True),
        Flag("in_json", "file", help="metadata to start from (default: out_json when it exists, so runs add up)"),
        Flag("caption_extension", "text", extension, help=f"extension of the text files (default {extension})",
             aliases=aliases, **gui_extension),
        Flag("full_path", "bool", help="key entries by the image's full path (needed for several folders in one file)"),
        Flag("recursive", "bool", help="also read subfolders (needs --full_path)"),
        Flag("debug", "bool", help="print every merged text", gui=False),  # the log would list every caption
    ))  # fmt: skip


# caption_extention: sd-scripts' misspelled flag, still in old scripts.
MERGE_CAPTIONS = _merge("merge_captions_to_metadata", "Merge caption files into fine-tuning metadata JSON.", ".caption",
                        aliases=("caption_extention",))
MERGE_TAGS = _merge("merge_dd_tags_to_metadata", "Merge tag files into fine-tuning metadata JSON.", ".txt")

CLEAN_METADATA = ToolFlags("clean_captions_and_tags", "Clean captions and tags in fine-tuning metadata JSON.", (
    Flag("in_json", "file", help="metadata file to read", positional=True, required=True),
    Flag("out_json", "save", help="metadata file to write (may be the same file)", positional=True, required=True),
    Flag("debug", "bool", help="print every changed caption and tag list"),
))  # fmt: skip

PREPARE_LATENTS = ToolFlags("prepare_buckets_latents", "Bucket images and cache their latents for fine-tuning.", (
    Flag("train_data_dir", "folder", help="folder with the images", positional=True, required=True),
    Flag("in_json", "file", help="metadata file to read (from merge_captions_to_metadata etc.)", positional=True,
         required=True),
    Flag("out_json", "save", help="metadata file to write", positional=True, required=True),
    Flag("model_name_or_path", "file", help="model whose VAE encodes the latents (the one you will train)",
         positional=True, required=True),
    Flag("max_resolution", "text", "512,512", help="training resolution 'width,height' (default 512,512)"),
    # At least 1, as in sd-scripts (see the tool's docstring).
    Flag("batch_size", "int", 1, help="images encoded at once (default 1)", range=Range(low=1)),
    Flag("mixed_precision", "choice", "no", MIXED_PRECISIONS, help="VAE precision (default no)"),
    Flag("min_bucket_reso", "int", 256, help="smallest bucket side (default 256)"),
    Flag("max_bucket_reso", "int", 1024, help="largest bucket side (default 1024)"),
    Flag("bucket_reso_steps", "int", 64, help="bucket sides are multiples of this (default 64)"),
    Flag("tokenizer_cache_dir", "folder", help="tokenizers for single-file models without network access"),
    Flag("bucket_no_upscale", "bool", help="one bucket per image size, never enlarging"),
    Flag("flip_aug", "bool", help="also cache the latents of the mirrored images"),
    Flag("full_path", "bool", help="key entries by full path (several folders)"),
    Flag("recursive", "bool", help="also read subfolders (needs --full_path)"),
    Flag("v2", "bool", help="the model is SD 2.x (checked against the model)"),
    # A no-op kept for sd-scripts commands: nothing to offer in a form.
    Flag("skip_existing", "bool", gui=False,
         help="kept for sd-scripts commands: cache files that match the image, bucket and model are always reused, "
         "and any other is rebuilt"),
))  # fmt: skip

TOOLS = (MERGE_CAPTIONS, MERGE_TAGS, CLEAN_METADATA, PREPARE_LATENTS)
