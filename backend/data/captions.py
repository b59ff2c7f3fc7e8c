"""Caption files and per-epoch caption processing (sd-scripts semantics).

Reading: `<image stem><caption_extension>`, first line stripped (all non-empty lines with
enable_wildcard). sd-scripts defaults caption_extension to `.caption`, and users with `.txt`
captions silently trained on class tokens only; `read_subset_captions` notices caption files with
the other usual extension beside the images and says to set --caption_extension. Caption files that
are not UTF-8 are collected, not raised one by one, so a report lists every one of them.

Processing (`process_caption`) follows sd-scripts' `BaseDataset.process_caption`: prefix/suffix
are added first (so they take part in shuffling unless kept by keep_tokens), then whole-caption
dropout, wildcards, then token warm-up, shuffle and tag dropout of the comma-separated tokens, with
the first `keep_tokens` tokens (or everything before `keep_tokens_separator`, e.g. `|||`) kept in place.
Token warm-up (`token_warmup_step`) keeps only the first of the other tags early in the run: their
count grows from `token_warmup_min` at step 0 to all of them at the warm-up step. The step is the
batch's optimizer step (`CaptionStep`), derived from its place in the run, not read from the loop,
so any number of DataLoader workers and a resumed run make the same captions.
Randomness comes from the `random.Random` passed in, so one seed gives the same captions on any
number of DataLoader workers.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from backend.data.errors import DatasetError
from backend.data.specs import SubsetSpec
from backend.messages import msg

# Caption extensions people actually use; a miss on one while files of another exist is a hint.
COMMON_CAPTION_EXTENSIONS = (".txt", ".caption")


def fix_caption_encoding() -> str:
    return msg("dataset.caption.fix_encoding", "save it again as UTF-8, in Notepad with Save As and Encoding UTF-8")


class CaptionEncodingError(DatasetError):
    """A caption file that is not UTF-8 text; `reason` says what it looks like instead."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(msg(
            "dataset.caption.not_utf8", "caption file {path} is {reason}: {fix}",
            path=path, reason=reason, fix=fix_caption_encoding(),
        ))  # fmt: skip
        self.path, self.reason = path, reason


def not_utf8(raw: bytes) -> str:
    """'not UTF-8 text (it looks like Shift_JIS)': the encodings Windows editors write, when recognisable.
    A predicate: "<file> is <this>"."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return msg("dataset.encoding.utf16", "not UTF-8 text (it is UTF-16, Notepad's \"Unicode\")")
    try:
        raw.decode("cp932")
    except UnicodeDecodeError:
        return msg("dataset.encoding.unknown", "not UTF-8 text")
    return msg("dataset.encoding.shift_jis", "not UTF-8 text (it looks like Shift_JIS)")


def face_source_stem(stem: str) -> str | None:
    """'photo_120_80_64_64' -> 'photo': the name sd-scripts' face detection tool started from, when `stem` ends
    in its four face numbers (face_crop.py); None otherwise."""
    parts = stem.split("_")
    if len(parts) < 5 or not all(p.isdigit() for p in parts[-4:]):
        return None
    return "_".join(parts[:-4])


def read_caption(image_path: Path, extension: str, enable_wildcard: bool = False) -> str | None:
    """The caption for `image_path`, or None when there is no caption file. A face crop named
    '<name>_<cx>_<cy>_<w>_<h>' without one of its own takes '<name>'s, as sd-scripts reads it."""
    path = image_path.with_name(image_path.stem + extension)
    source = face_source_stem(image_path.stem)
    if not path.is_file() and source is not None:
        path = image_path.with_name(source + extension)
    if not path.is_file():
        return None
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # -sig: Windows editors often write a BOM
    except UnicodeDecodeError:
        raise CaptionEncodingError(path, not_utf8(raw)) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    return "\n".join(lines) if enable_wildcard else lines[0]


@dataclass
class CaptionScan:
    captions: list[str]  # one per image: caption file, else class tokens, else ""
    missing: list[Path] = field(default_factory=list)
    # Caption files that are not UTF-8 text, with what they look like (their images get the class tokens
    # meanwhile; the scan reports each as a problem).
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    # Images without a caption that do have one under another common extension: image -> that extension.
    other_extension: dict[Path, str] = field(default_factory=dict)

    def hint(self, subset: SubsetSpec, left_out: Collection[str] = ()) -> str | None:
        """The caption_extension to set, when images have captions under another one; images whose
        path is in `left_out` (image files that cannot be read) are not counted."""
        counts = Counter(ext for image, ext in self.other_extension.items() if str(image) not in left_out)
        if not counts:
            return None
        ext, count = counts.most_common(1)[0]
        return msg(
            "dataset.caption.other_extension",
            "{count} image(s) in {folder} have a '{ext}' caption file but caption_extension is '{current}': set "
            "--caption_extension {ext} (or caption_extension = \"{ext}\" in the dataset config) to use them",
            count=count, folder=subset.image_dir, ext=ext, current=subset.caption_extension,
        )  # fmt: skip


def read_subset_captions(subset: SubsetSpec, images: list[Path]) -> CaptionScan:
    captions: list[str] = []
    scan = CaptionScan(captions)
    other_exts = [e for e in COMMON_CAPTION_EXTENSIONS if e != subset.caption_extension]
    for image in images:
        try:
            caption = read_caption(image, subset.caption_extension, subset.enable_wildcard)
        except CaptionEncodingError as exc:  # collected: every bad caption file is listed at once
            scan.unreadable.append((exc.path, exc.reason))
            captions.append(subset.class_tokens or "")
            continue
        if caption is None:
            scan.missing.append(image)
            for ext in other_exts:
                if image.with_name(image.stem + ext).is_file():
                    scan.other_extension[image] = ext
                    break
            caption = subset.class_tokens or ""
        captions.append(caption)
    return scan


def count_tags(captions: list[str]) -> dict[str, int]:
    """sd-scripts' ss_tag_frequency counting: comma-split, stripped, lower-cased, non-empty."""
    counts: Counter[str] = Counter()
    for caption in captions:
        counts.update(tag.strip().lower() for tag in caption.split(",") if tag.strip())
    return dict(counts)


_WILDCARD = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class CaptionStep:
    """Where the run stands when a batch's captions are made (token warm-up grows captions with it)."""

    step: int  # optimizer steps done before the batch's step (0 for the first)
    total_steps: int  # the run's optimizer steps: a token_warmup_step below 1 is a share of them


def warmup_steps(token_warmup_step: float, total_steps: int) -> int:
    """sd-scripts' warm-up length: a value below 1 is a share of the run's steps (rounded down), else a count."""
    if token_warmup_step < 1:
        return math.floor(token_warmup_step * total_steps)
    return int(token_warmup_step)


def warmup_tag_count(tags: int, subset: SubsetSpec, step: CaptionStep | None) -> int | None:
    """How many of `tags` (the caption's tags not kept in place) token warm-up uses at `step`; None: all.
    Without a step (validation, the dataset report) captions are whole."""
    if step is None or subset.token_warmup_step <= 0:
        return None
    length = warmup_steps(subset.token_warmup_step, step.total_steps)
    if not length or step.step >= length:
        return None
    return math.floor(step.step * ((tags - subset.token_warmup_min) / length)) + subset.token_warmup_min


def process_caption(
    caption: str, subset: SubsetSpec, epoch: int, rng: random.Random, step: CaptionStep | None = None
) -> str:
    """One epoch's version of `caption`. `epoch` counts from 1 as in sd-scripts; `step`: the batch's place in
    the run, for token warm-up."""
    if subset.caption_prefix:
        caption = subset.caption_prefix + " " + caption
    if subset.caption_suffix:
        caption = caption + " " + subset.caption_suffix

    dropped = subset.caption_dropout_rate > 0 and rng.random() < subset.caption_dropout_rate
    every_n = subset.caption_dropout_every_n_epochs
    if dropped or (every_n > 0 and epoch % every_n == 0):
        return ""

    caption = _expand_wildcards(caption, rng) if subset.enable_wildcard else caption.split("\n")[0]

    if subset.shuffle_caption or subset.token_warmup_step > 0 or subset.caption_tag_dropout_rate > 0:
        caption = _shuffle_and_drop_tags(caption, subset, rng, step)

    if subset.secondary_separator:
        caption = caption.replace(subset.secondary_separator, subset.caption_separator)
    return caption


def _split(text: str, separator: str) -> list[str]:
    return [t.strip() for t in text.split(separator) if t.strip()]


def _shuffle_and_drop_tags(caption: str, subset: SubsetSpec, rng: random.Random, step: CaptionStep | None) -> str:
    separator = subset.caption_separator
    fixed_suffix: list[str] = []
    keep_sep = subset.keep_tokens_separator
    if keep_sep and keep_sep in caption:
        # "fixed ||| shuffled ||| fixed suffix"
        fixed_part, flex_part = caption.split(keep_sep, 1)
        if keep_sep in flex_part:
            flex_part, suffix_part = flex_part.split(keep_sep, 1)
            fixed_suffix = _split(suffix_part, separator)
        fixed, flex = _split(fixed_part, separator), _split(flex_part, separator)
    else:
        tokens = [t.strip() for t in caption.strip().split(separator)]
        fixed, flex = tokens[: subset.keep_tokens], tokens[subset.keep_tokens :]

    count = warmup_tag_count(len(flex), subset, step)
    if count is not None:  # before shuffling, as sd-scripts: the first tags of the file are the ones kept
        flex = flex[:count]
    if subset.shuffle_caption:
        rng.shuffle(flex)
    if subset.caption_tag_dropout_rate > 0:
        flex = [t for t in flex if rng.random() >= subset.caption_tag_dropout_rate]
    # sd-scripts joins with ", " whatever caption_separator is.
    return ", ".join(fixed + flex + fixed_suffix)


def _expand_wildcards(caption: str, rng: random.Random) -> str:
    """One random line of a multi-line caption, with each '{a|b|c}' replaced by one choice.

    '{{' and '}}' stand for literal braces.
    """
    if "\n" in caption:
        caption = rng.choice(caption.split("\n"))
    open_mark, close_mark = "\x00", "\x01"  # control characters never appear in captions
    caption = caption.replace("{{", open_mark).replace("}}", close_mark)
    caption = _WILDCARD.sub(lambda m: rng.choice(m.group(1).split("|")), caption)
    return caption.replace(open_mark, "{").replace(close_mark, "}")
