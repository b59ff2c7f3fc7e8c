"""Dataset options: folders, captions, augmentation, buckets, latent caching, data loading.

Implemented by backend/data. Names, defaults and semantics are sd-scripts'; help texts say what
the code does, with typical values.
"""

from backend.messages import msg
from backend.options.schema import (
    ALL_COMMANDS,
    DREAMBOOTH_COMMANDS,
    LORA_COMMANDS,
    TEXTUAL_INVERSION_COMMANDS,
    WEIGHTED_CAPTION_COMMANDS,
    Option,
    declare_all,
)

# fine_tune.py has no DreamBooth-style folders (sd-scripts: add_dataset_arguments(parser, False, ...));
# every later script has them (sdxl_train.py, flux_train.py: add_dataset_arguments(parser, True, ...)).
_WITH_REG = tuple(command for command in ALL_COMMANDS if command != "fine_tune")

declare_all(
    [
        # --- folders ---------------------------------------------------------------------------
        Option(
            "train_data_dir", "path", None, group="folders",
            help="Parent folder of image folders named '<repeats>_<class tokens>', e.g. 'train/10_sks dog': "
            "10 = how often each image is used per epoch, 'sks dog' = caption for images without a caption "
            "file. Folders without a number prefix are skipped with a warning; images directly in this folder "
            "are an error. With --in_json, the folder holding the images listed there.",
        ),
        Option(
            "reg_data_dir", "path", None, group="folders", commands=_WITH_REG,
            help="Parent folder of regularization image folders, same '<repeats>_<class tokens>' naming. Reg "
            "images are cycled or truncated so their repeat-weighted count equals the training count, and "
            "their loss is weighted by --prior_loss_weight.",
        ),
        Option(
            "in_json", "path", None, group="folders",
            help="Fine-tuning metadata JSON (or JSONL) {image path: {caption, tags}} written by the captioning "
            "and merge tools; replaces the folder convention. Relative paths are resolved in --train_data_dir.",
        ),
        Option(
            "dataset_repeats", "int", 1, group="folders",
            help="How often each image from --in_json is used per epoch (0 switches it off, as in sd-scripts); "
            "also the repeats of --dataset_config subsets that set no num_repeats. Image folders take their "
            "repeats from the folder names instead.",
        ),
        Option(
            # Ours, not sd-scripts': a run-wide choice, so set on the command line or in --config_file (a
            # --dataset_config naming it is refused as a training option and stays loadable by sd-scripts).
            "skip_unreadable_images", "bool", False, group="folders",
            help="Train without image files that cannot be read (empty, cut short, not an image) instead of "
            "stopping before training. Without it such files are an error, all listed at once; with it they are "
            "listed in one warning and left out of the image and step counts.",
        ),
        # --- captions --------------------------------------------------------------------------
        Option(
            "caption_extension", "str", ".caption", group="dataset", aliases=("caption_extention",),
            help="Extension of caption files next to the images (image.png -> image.txt). The GUI's forms "
            "start with '.txt', which the captioning and tagging tools write; the command line keeps "
            "sd-scripts' default '.caption'. Only the first line is used. Images without one train on their "
            "folder's class tokens, and the log says how many.",
        ),
        Option(
            "shuffle_caption", "bool", False, group="dataset",
            help="Shuffle the caption's comma-separated tags anew for every sample, so no tag order is learned. "
            "Use --keep_tokens or --keep_tokens_separator to keep a trigger word in front.",
        ),
        Option(
            "caption_separator", "str", ",", group="dataset",
            help="Separator between the tags that shuffling and tag dropout act on (default ','). Shuffled "
            "captions are re-joined with ', '.",
        ),
        Option(
            "keep_tokens", "int", 0, group="dataset", minimum=0,
            range_reason=msg(
                "options.range_reason.keep_tokens",
                "a count of tags, 0 = none kept; sd-scripts tests `> 0`, so a negative count silently keeps "
                "none, never what a minus sign meant"
            ),
            help="When shuffling (or with tag dropout), keep the first N comma-separated tags of the caption in "
            "place, e.g. 1 to keep a trigger word first. It counts tags, not tokenizer tokens, and has nothing "
            "to do with token frequency. Typical: 0 or 1.",
        ),
        Option(
            "keep_tokens_separator", "str", "", group="dataset",
            help="A marker such as '|||' in captions: tags before it stay in place, tags after it are shuffled; "
            "a second marker starts a fixed suffix ('a, b ||| c, d ||| e'). Overrides --keep_tokens for captions "
            "that contain it.",
        ),
        Option(
            "secondary_separator", "str", None, group="dataset",
            help="A separator (e.g. ';;;') that groups words into one tag for shuffling and dropout; replaced by "
            "--caption_separator afterwards.",
        ),
        Option(
            "enable_wildcard", "bool", False, group="dataset",
            help="Captions may hold '{a|b|c}' (one choice per sample) and several lines (one line per sample); "
            "'{{' and '}}' are literal braces.",
        ),
        Option(
            "caption_prefix", "str", None, group="dataset",
            help="Text put before every caption (with a space), e.g. a trigger word. It is added before shuffling, "
            "so with --shuffle_caption keep it first with --keep_tokens 1.",
        ),
        Option(
            "caption_suffix", "str", None, group="dataset",
            help="Text put after every caption (with a space), before shuffling.",
        ),
        Option(
            "caption_dropout_rate", "float", 0.0, group="dataset", minimum=0.0, maximum=1.0,
            range_reason=msg(
                "options.range_reason.caption_dropout_rate",
                "a probability: sd-scripts compares random() < rate, so above 1 every caption is dropped and"
                " below 0 none is, silently"
            ),
            help="Probability of training a sample with an empty caption (unconditional), e.g. 0.05. 0 = off.",
        ),
        Option(
            "caption_dropout_every_n_epochs", "int", 0, group="dataset", minimum=0,
            range_reason=msg(
                "options.range_reason.caption_dropout_every_n_epochs",
                "a count of epochs, 0 = off; sd-scripts tests `> 0`, so a negative count is silently off "
                "too, never what a minus sign meant"
            ),
            help="Use empty captions for the whole of every Nth epoch (epochs N, 2N, ... counting from 1). 0 = off.",
        ),
        Option(
            "caption_tag_dropout_rate", "float", 0.0, group="dataset", minimum=0.0, maximum=1.0,
            range_reason=msg(
                "options.range_reason.caption_tag_dropout_rate",
                "a probability: sd-scripts compares random() >= rate per tag, so above 1 every tag is "
                "dropped and below 0 none is, silently"
            ),
            help="Probability of leaving out each tag (except tags kept by --keep_tokens), per sample, e.g. 0.1. "
            "0 = off.",
        ),
        Option(
            "token_warmup_min", "int", 1, group="dataset",
            help="Token warm-up: how many of the caption's tags (after those --keep_tokens keeps) are used at step "
            "0; the count then grows evenly to all tags at --token_warmup_step. Default 1.",
        ),
        Option(
            "token_warmup_step", "float", 0.0, group="dataset",
            help="Token warm-up: the step at which captions reach all their tags, growing from --token_warmup_min "
            "(below 1: that share of the run's steps, e.g. 0.2). The cut keeps the first tags, so put the "
            "important ones first or use --shuffle_caption. 0 = off (default).",
        ),
        Option(
            "weighted_captions", "bool", False, group="dataset", commands=WEIGHTED_CAPTION_COMMANDS,
            other_commands_reason=msg(
                "options.other_commands.weighted_captions", "Weights are put on CLIP text encoders' outputs, which "
                "sd-scripts does for SD 1.x/2.x and SDXL only: its FLUX.1 tokenizer has no weighted form and its SD3 "
                "scripts refuse the option"
            ),
            help="Read A1111-style weights in captions: '(word)' x1.1, '[word]' /1.1, '(word:1.3)' x1.3, '\\(' a "
            "literal bracket. Each token's text-encoder output is multiplied by its weight. Keep commas out of "
            "brackets when shuffling or dropping tags, which split captions at commas.",
        ),
        # --- augmentation ----------------------------------------------------------------------
        Option(
            "flip_aug", "bool", False, group="dataset",
            help="Mirror each sample left-right with 50% probability. Doubles latent caching work (both sides "
            "are cached). Avoid for asymmetric subjects (text, logos, one-sided hair parts).",
        ),
        Option(
            "color_aug", "bool", False, group="dataset",
            help="Weak colour augmentation: a third of the samples get a small hue shift (up to +-16 degrees) or "
            "a gamma change (0.95-1.05). Cannot be combined with latent caching.",
        ),
        Option(
            "random_crop", "bool", False, group="dataset",
            help="Crop the part of the resized image that exceeds its bucket at a random place instead of the "
            "center. Cannot be combined with latent caching.",
        ),
        Option(
            "alpha_mask", "bool", False, group="dataset",
            help="Use the images' alpha channel as a loss mask (transparent = not learned, half transparent = half "
            "weight); images without alpha count fully. Pixels are still composited onto white. The mask follows "
            "the image through resizing, cropping, flipping and latent caching (the cache files hold it). It "
            "applies with or without --masked_loss, as in sd-scripts' train_network.",
        ),
        # sd-scripts: add_masked_loss_arguments, in every script but fine_tune.py (which applies no mask).
        Option(
            "masked_loss", "bool", False, group="dataset", commands=_WITH_REG,
            other_commands_reason=msg(
                "options.other_commands.masked_loss",
                "sd-scripts' fine_tune.py has no masked loss; --alpha_mask masks its loss here",
            ),
            help="Weight the loss by a mask per image: white (1) = learned, black (0) = ignored, grey in between. "
            "The masks are the images in --conditioning_data_dir (or a dataset config's conditioning_data_dir), "
            "red channel, same file names and sizes as the training images. Masked-out areas still count in the "
            "mean (the loss is not rescaled), as in sd-scripts. --alpha_mask masks without this flag.",
        ),
        Option(
            "conditioning_data_dir", "path", None, group="folders", commands=_WITH_REG,
            other_commands_reason=msg(
                "options.other_commands.masked_loss",
                "sd-scripts' fine_tune.py has no masked loss; --alpha_mask masks its loss here",
            ),
            help="Folder of loss masks for --masked_loss, laid out like --train_data_dir: the mask of "
            "'train/10_sks/a.png' is 'masks/10_sks/a.png' (any image type, same name, same size). Every training "
            "image needs one; regularization images are not masked. sd-scripts' LoRA scripts take this flag but "
            "read masks only from a dataset config's conditioning_data_dir; here both work.",
        ),
        Option(
            "face_crop_aug_range", "str", None, group="dataset",
            help="'low,high' such as '2.0,4.0': for images named '<name>_<face cx>_<face cy>_<face w>_<face h>.png' "
            "(as sd-scripts' face detection tool writes them), scale each so the face is 1/high to 1/low of the "
            "resolution's short side, drawn per sample, and crop around the face. Without --enable_bucket only, as "
            "in sd-scripts; images without face numbers are resized and cropped as usual.",
        ),
        # --- resolution and buckets ------------------------------------------------------------
        Option(
            "resolution", "str", None, group="basic",
            help="Training resolution 'N' or 'W,H', e.g. 512 for SD 1.x, 768 for SD 2.x v-models, 1024 for SDXL. "
            "Images are resized to cover it and center-cropped; with --enable_bucket it sets the maximum area.",
        ),
        Option(
            "train_batch_size", "int", 1, group="basic", minimum=1,
            range_reason=msg(
                "options.range_reason.train_batch_size",
                "sd-scripts splits each bucket into batches of this size (range() fails on a step of 0; a "
                "negative size gives no batch)"
            ),
            help="Images per training step. Batches are formed within one bucket, so a bucket with fewer images "
            "gives a smaller last batch. Typical: 1-4 for SDXL on 12-24 GB, 2-8 for SD 1.x.",
        ),
        Option(
            "enable_bucket", "bool", False, group="basic",
            help="Aspect-ratio buckets: each image trains at the bucket (W,H multiples of --bucket_reso_steps, area "
            "up to the resolution's) closest to its aspect ratio, so little is cropped. Recommended unless all "
            "images share one aspect ratio.",
        ),
        Option(
            "min_bucket_reso", "int", 256, group="dataset", minimum=8,
            range_reason=msg(
                "options.range_reason.min_bucket_reso",
                "a bucket side below 8 pixels is less than one latent pixel (the VAE downsamples by 8); "
                "sd-scripts would build buckets of zero width at 0"
            ),
            help="Smallest bucket side in pixels (default 256; at most the resolution's short side). Ignored with "
            "--bucket_no_upscale.",
        ),
        Option(
            "max_bucket_reso", "int", 1024, group="dataset", minimum=8,
            range_reason=msg(
                "options.range_reason.max_bucket_reso",
                "a bucket side below 8 pixels is less than one latent pixel (the VAE downsamples by 8); "
                "sd-scripts then fails its check that max_bucket_reso covers the resolution"
            ),
            help="Largest bucket side in pixels (default 1024; at least the resolution's long side, e.g. 2048 for "
            "SDXL at 1024 to allow 2:1 images). Ignored with --bucket_no_upscale.",
        ),
        Option(
            "bucket_reso_steps", "int", 64, group="dataset", minimum=8,
            range_reason=msg(
                "options.range_reason.bucket_reso_steps",
                "with --enable_bucket sd-scripts refuses a step that 64 (SD) or 32 (SDXL) does not divide "
                "and fails on 0 with a division by zero; below 8 pixels a bucket side is less than one "
                "latent pixel"
            ),
            help="Bucket sides are multiples of this (default 64). SD 1.x/2.x need 64, SDXL accepts 32.",
        ),
        Option(
            "bucket_no_upscale", "bool", False, group="dataset",
            help="Never enlarge images: images smaller than the resolution's area get a bucket of their own size "
            "(rounded down to --bucket_reso_steps), larger ones are shrunk to that area keeping their aspect "
            "ratio.",
        ),
        Option(
            "resize_interpolation", "str", None, group="advanced",
            choices=("lanczos", "nearest", "bilinear", "linear", "bicubic", "cubic", "area"),
            help="Resampling filter for resizing images. Default: area when shrinking, lanczos when enlarging.",
        ),
        Option(
            "cache_info", "bool", False, group="dataset", commands=_WITH_REG,
            ignored_on=("fine_tune",),
            ignored_reason=msg(
                "options.ignored.cache_info", "it caches the image sizes of image folders, and fine_tune reads its "
                "images from --in_json metadata"
            ),
            help="Keep each image folder's image sizes (and captions, for sd-scripts) in 'metadata_cache.json' "
            "there, so later runs need not open every image. An entry is reused while its image file keeps its size "
            "and time; the file is rewritten when images changed. Speeds up large datasets.",
        ),
        Option(
            "debug_dataset", "bool", False, group="advanced",
            help="Show what training would see and exit without loading the model: each batch of the first epoch "
            "with its bucket, image sizes, crops, flips and captions, and the images as trained (after cropping "
            "and augmentation) saved as PNG files in a new 'debug_dataset_<time>' folder in --output_dir.",
        ),
        # --- latent cache ----------------------------------------------------------------------
        Option(
            "cache_latents", "bool", False, group="basic",
            help="Encode every image with the VAE once before training and keep the latents in memory: faster "
            "steps, less VRAM. Not with --color_aug or --random_crop.",
        ),
        Option(
            "cache_latents_to_disk", "bool", False, group="basic",
            help="Like --cache_latents, but stores '<image>_sd.npz' / '<image>_sdxl.npz' beside each image and "
            "reuses them in later runs. A file is rebuilt when its image, bucket, resize or VAE changed.",
        ),
        Option(
            "vae_batch_size", "int", 1, group="advanced", minimum=1,
            range_reason=msg(
                "options.range_reason.vae_batch_size",
                "sd-scripts fails on 0 when latents are not cached (range() with a step of 0) and treats it "
                "as 1 when they are"
            ),
            help="Images encoded per VAE call while caching latents (same bucket only). 1-4 is typical; higher "
            "needs more VRAM.",
        ),
        Option(
            "skip_cache_check", "bool", False, group="advanced",
            help="Reuse any existing latent cache file without checking it against its image and settings. Faster "
            "start on huge datasets, but stale files are used as they are.",
        ),
        # --- loading and weighting -------------------------------------------------------------
        Option(
            "max_data_loader_n_workers", "int", 8, group="advanced", minimum=0,
            range_reason=msg(
                "options.range_reason.max_data_loader_n_workers",
                "PyTorch's DataLoader refuses a negative num_workers (ValueError), so sd-scripts fails there"
            ),
            help="Processes that load and augment images in parallel (capped at the CPU count; 0 = load in the "
            "training process). Lower it if RAM is short; with cached latents 0-2 is enough.",
        ),
        Option(
            "persistent_data_loader_workers", "bool", False, group="advanced",
            help="Keep data loader workers alive between epochs: saves the restart pause each epoch (noticeable "
            "on Windows), costs their memory for the whole run.",
        ),
        Option(
            # sd-scripts adds the flag where add_training_arguments(support_dreambooth=True): the LoRA trainers and
            # train_db; its other fine-tune scripts take it in the dataset config only, here the flag too.
            "prior_loss_weight", "float", 1.0, group="advanced", minimum=0.0,
            commands=LORA_COMMANDS + DREAMBOOTH_COMMANDS + TEXTUAL_INVERSION_COMMANDS,
            range_reason=msg(
                "options.range_reason.prior_loss_weight",
                "a negative weight makes the regularization images' loss negative (training would push their"
                " error up)"
            ),
            help="Loss weight of regularization images relative to training images (1.0 = equal).",
        ),
    ]
)
