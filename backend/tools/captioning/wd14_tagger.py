"""The WD14 tagger model (SmilingWolf's v2 and v3 ONNX taggers): tags file, preprocessing, inference, tag choice.

Model contract (as published in the SmilingWolf repositories, and as the tiny test tagger built
by devtools/tiny_captioners.py): one input, NHWC float32 `[N, S, S, 3]`, pixels 0..255 in
BGR order; one output `[N, number of tags]` of sigmoid probabilities, in the row order of
`selected_tags.csv` (`tag_id,name,category,count`; category 9 rating, 0 general, 4 character).
The input size S and a fixed batch size, if any, are read from the model, never assumed.

Preprocessing follows the taggers' training: transparency onto white, pad to a square with white
(centred), resize to S (area averaging when shrinking, Lanczos when enlarging), RGB -> BGR.

Tag choice follows sd-scripts' defaults, with two deliberate differences: a tag is classified by
the category of its own row (not by its position after the first four rows), and
`--always_first_tags` keep the order the user gave them in. Undesired tags match both with and
without underscores, whichever way the user typed them.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from backend.messages import msg
from backend.tools.cli.light_cli import InputError

logger = logging.getLogger(__name__)

RATING, GENERAL, CHARACTER = 9, 0, 4
DEFAULT_SIZE = 448


@dataclass(frozen=True)
class TagTable:
    names: list[str]
    categories: list[int]

    def __len__(self) -> int:
        return len(self.names)


def read_tag_table(path: Path) -> TagTable:
    """selected_tags.csv: a header `tag_id,name,category,count` and one row per model output."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(msg("tool.tag_list_unreadable", "cannot read the tagger's tag list {path}: {error}",
                             path=path, error=exc)) from None
    if not rows or [h.strip() for h in rows[0][:3]] != ["tag_id", "name", "category"]:
        raise InputError(msg("tool.tag_list_header", "{path} is not a WD14 selected_tags.csv: the first line must be "
                             "tag_id,name,category,count", path=path))
    names, categories = [], []
    for number, row in enumerate(rows[1:], start=2):
        try:
            names.append(row[1])
            categories.append(int(row[2]))
        except (IndexError, ValueError):
            raise InputError(msg("tool.tag_list_row", "{path} line {line}: expected tag_id,name,category,count, got "
                                 "{row}", path=path, line=number, row=repr(row))) from None
    return TagTable(names, categories)


def preprocess(image: Image.Image, size: int) -> np.ndarray:
    """An RGB PIL image -> float32 [size, size, 3] BGR array of 0..255, padded to square with white."""
    side = max(image.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    if side != size:
        resample = Image.Resampling.BOX if side > size else Image.Resampling.LANCZOS
        square = square.resize((size, size), resample)
    return np.asarray(square, dtype=np.float32)[:, :, ::-1].copy()


class TaggerModel:
    """An onnxruntime session on CUDA when onnxruntime offers it, else CPU."""

    def __init__(self, onnx_path: Path) -> None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "ROCMExecutionProvider") if p in available]
        providers.append("CPUExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(onnx_path), providers=providers)
        except Exception as exc:  # a truncated download or not an ONNX file
            raise InputError(msg("tool.tagger_unloadable", "cannot load the tagger model {path} ({error}); delete it "
                                 "and run again with --force_download", path=onnx_path,
                                 error=f"{type(exc).__name__}: {exc}")) from None
        logger.info("onnxruntime providers: %s", ", ".join(self.session.get_providers()))
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        shape = list(model_input.shape)
        if len(shape) != 4 or shape[3] != 3:
            raise InputError(msg("tool.tagger_input_shape", "{path}: expected an NHWC image input [N, S, S, 3], the "
                                 "model has {shape}", path=onnx_path, shape=shape))
        self.size = shape[1] if isinstance(shape[1], int) and shape[1] > 0 else DEFAULT_SIZE
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.num_outputs = self.session.get_outputs()[0].shape[-1]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        count = len(batch)
        if self.fixed_batch is not None and count < self.fixed_batch:
            pad = np.zeros((self.fixed_batch - count, *batch.shape[1:]), dtype=np.float32)
            batch = np.concatenate([batch, pad])
        return self.session.run(None, {self.input_name: batch})[0][:count]


@dataclass(frozen=True)
class TagOptions:
    general_threshold: float = 0.35
    character_threshold: float = 0.35
    undesired: frozenset[str] = frozenset()
    always_first: tuple[str, ...] = ()
    remove_underscore: bool = False
    character_tags_first: bool = False
    rating: str | None = None  # None, "first" or "last"


def display_name(tag: str, remove_underscore: bool) -> str:
    # Short tags are emoticons (^_^, o_o) whose underscore is part of the tag.
    return tag.replace("_", " ") if remove_underscore and len(tag) > 3 else tag


def split_tag_list(text: str | None, separator: str) -> list[str]:
    sep = separator.strip() or ","
    return [t.strip() for t in (text or "").split(sep) if t.strip()]


def undesired_set(tags: list[str]) -> frozenset[str]:
    return frozenset(tags) | frozenset(t.replace("_", " ") for t in tags) | frozenset(t.replace(" ", "_") for t in tags)


def _is_undesired(name: str, tag: str, options: TagOptions) -> bool:
    return name in options.undesired or tag in options.undesired


@dataclass
class ChosenTags:
    tags: list[str]
    rating: str | None = None
    characters: list[str] = field(default_factory=list)
    general: list[str] = field(default_factory=list)


def choose_tags(probs: np.ndarray, table: TagTable, options: TagOptions) -> ChosenTags:
    """The tags for one image's probabilities, in output order (see the module docstring)."""
    if len(probs) != len(table):
        raise InputError(msg("tool.tagger_outputs_differ", "the tagger has {outputs} outputs but selected_tags.csv "
                             "lists {tags} tags: the two files are from different models; download them again with "
                             "--force_download", outputs=len(probs), tags=len(table)))
    chosen = ChosenTags([])
    best_rating = -1.0
    for index, (name, category) in enumerate(zip(table.names, table.categories, strict=True)):
        p = float(probs[index])
        tag = display_name(name, options.remove_underscore)
        if category == RATING:  # the most likely rating, then dropped if undesired (as sd-scripts)
            if p > best_rating:
                best_rating, chosen.rating = p, (None if _is_undesired(name, tag, options) else tag)
        elif _is_undesired(name, tag, options):
            continue
        elif category == CHARACTER and p >= options.character_threshold:
            chosen.characters.append(tag)
        elif category == GENERAL and p >= options.general_threshold:
            chosen.general.append(tag)
    if options.character_tags_first:
        tags = chosen.characters + chosen.general
    else:  # in model output order, as sd-scripts writes them
        order = {t: i for i, t in enumerate(display_name(n, options.remove_underscore) for n in table.names)}
        tags = sorted(chosen.general + chosen.characters, key=lambda t: order[t])
    if chosen.rating is not None and options.rating == "first":
        tags.insert(0, chosen.rating)
    elif chosen.rating is not None and options.rating == "last":
        tags.append(chosen.rating)
    first = [t for t in options.always_first if t in tags]
    chosen.tags = first + [t for t in tags if t not in first]
    return chosen
