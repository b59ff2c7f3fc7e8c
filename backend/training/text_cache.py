"""Text-encoder output caching (SDXL, FLUX.1, Chroma) (`--cache_text_encoder_outputs`, `--cache_text_encoder_outputs_to_disk`).

Every caption the dataset can produce is encoded once before training, exactly as a training
step would encode it (same tokenizer, max_token_length, autocast and compute dtype), and kept on
the CPU; batches look their conditioning up by caption. The text encoders then leave the GPU
(sampling borrows them back). This needs captions that never change and text encoders that are
not trained; preflight enforces both, as sd-scripts does. With `_to_disk`, each image's outputs
are also kept in files beside the images, named and laid out as sd-scripts does for the family
(`<image stem>_te_outputs.npz` for SDXL; the spec's `text_cache_file`, backend/data/text_encoder_files.py),
and valid files are reused instead of encoded.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from backend.data.dataset import DatasetGroup
from backend.data.text_encoder_files import TextCacheFile, TextCacheKey, load_if_valid, save_outputs
from backend.models.components import Components, PromptEmbeds
from backend.models.files import model_identity
from backend.models.spec import ModelSpecification
from backend.training.progress import ProgressReporter

logger = logging.getLogger(__name__)

ENCODE_BATCH_SIZE = 16  # captions per text-encoder call: text encoding is cheap next to a U-Net step

EncodeFn = Callable[[list[str]], PromptEmbeds]  # a batch of captions -> batched conditioning
KeyFn = Callable[[str], TextCacheKey]  # caption -> what its cache file must record
ProgressFn = Callable[[int, int], None]  # (captions encoded, captions to encode)


@dataclass
class TextEncoderCache:
    """caption -> its conditioning without a batch axis, on the CPU in the compute dtype."""

    embeds: dict[str, PromptEmbeds]

    def lookup(self, captions: Sequence[str], device: torch.device) -> PromptEmbeds:
        missing = [c for c in captions if c not in self.embeds]
        if missing:
            raise KeyError(f"caption {missing[0]!r} is not in the text-encoder output cache")
        found = [self.embeds[c] for c in captions]
        hidden = torch.stack([e.hidden_states for e in found]).to(device, non_blocking=True)
        # SDXL and FLUX.1 have a pooled output; Chroma (T5 alone) has none.
        pools = [e.pooled for e in found]
        pooled = torch.stack(pools).to(device, non_blocking=True) if pools[0] is not None else None  # type: ignore[arg-type]
        masks = [e.attention_mask for e in found]
        mask = torch.stack(masks).to(device, non_blocking=True) if masks[0] is not None else None  # type: ignore[arg-type]
        return PromptEmbeds(hidden, pooled, mask)


def cache_text_encoder_outputs(
    captions: Sequence[tuple[str, str]],
    encode: EncodeFn,
    file_format: TextCacheFile | None,
    dtype: torch.dtype,
    file_key: KeyFn | None = None,
    progress: ProgressFn | None = None,
) -> TextEncoderCache:
    """Encode each distinct caption of `captions` ((image path, caption) pairs) once.

    With `file_key` (and the family's `file_format`), every image also gets a valid cache file: valid
    files are read instead of encoded, stale or missing ones are (re)written.
    """
    embeds: dict[str, PromptEmbeds] = {}
    stale: dict[str, list[Path]] = {}  # caption -> cache files to (re)write
    for image, caption in captions:
        if file_key is None:
            stale.setdefault(caption, [])
            continue
        assert file_format is not None, "cache files need the family's file format"
        path = file_format.path(image)
        outputs = load_if_valid(path, file_key(caption), file_format.arrays)
        if outputs is None:
            stale.setdefault(caption, []).append(path)
        elif caption not in embeds:
            embeds[caption] = file_format.from_arrays(outputs, dtype)
    todo = [caption for caption in stale if caption not in embeds]

    if progress:
        progress(0, len(todo))
    for start in range(0, len(todo), ENCODE_BATCH_SIZE):
        batch = todo[start : start + ENCODE_BATCH_SIZE]
        with torch.no_grad():
            encoded = encode(batch)
        hidden = encoded.hidden_states.to("cpu", dtype)
        pooled = encoded.pooled.to("cpu", dtype) if encoded.pooled is not None else None  # None: Chroma
        mask = encoded.attention_mask.to("cpu") if encoded.attention_mask is not None else None
        # Clones: views would keep the batch's whole tensors alive (long prompts: every chunk's pooled output).
        for i, caption in enumerate(batch):
            embeds[caption] = PromptEmbeds(hidden[i].clone(), pooled[i].clone() if pooled is not None else None,
                                           mask[i].clone() if mask is not None else None)
        if progress:
            progress(start + len(batch), len(todo))

    if file_key is not None:
        assert file_format is not None
        for caption, paths in stale.items():
            for path in paths:
                save_outputs(path, file_key(caption), file_format.to_arrays(embeds[caption]))
    logger.info("text encoder outputs: %d captions encoded, %d read from cache files", len(todo),
                len(embeds) - len(todo))
    return TextEncoderCache(embeds)


@dataclass(frozen=True)
class TextCacheConfig:
    """The options the run's text-encoder cache reads."""

    enabled: bool  # --cache_text_encoder_outputs, or _to_disk (sd-scripts: _to_disk turns caching on by itself)
    to_disk: bool  # --cache_text_encoder_outputs_to_disk
    max_token_length: int | None
    clip_skip: int | None
    model: str  # --pretrained_model_name_or_path: cache files name the encoder they came from
    # The video trainer's precomputation folder: the files go there, named by their clip, not beside it.
    folder: str | None = None
    # --weighted_captions: the weighted outputs are cached (as sd-scripts' sdxl_train_network does), and their
    # files say so, so unweighted ones are not reused for them nor the reverse.
    weighted_captions: bool = False

    @classmethod
    def from_args(cls, args: Any) -> TextCacheConfig:
        to_disk = bool(args.cache_text_encoder_outputs_to_disk)
        return cls(
            enabled=bool(args.cache_text_encoder_outputs) or to_disk, to_disk=to_disk,
            max_token_length=args.max_token_length, clip_skip=args.clip_skip,
            model=args.pretrained_model_name_or_path, folder=getattr(args, "text_cache_dir", None),
            weighted_captions=bool(getattr(args, "weighted_captions", False)),
        )


def prepare_text_cache(
    config: TextCacheConfig, accelerator: Accelerator, spec: ModelSpecification, components: Components,
    group: DatasetGroup, weight_dtype: torch.dtype, reporter: ProgressReporter,
) -> TextEncoderCache | None:
    """The run's cache (None when caching is off); afterwards the text encoders wait on the CPU."""
    if not config.enabled:
        return None
    encoders = components.text_encoders

    def encode(captions: list[str]) -> PromptEmbeds:
        with accelerator.autocast():
            return spec.encode_captions(components, captions, config.max_token_length, config.clip_skip,
                                        weighted=config.weighted_captions)

    file_format = spec.text_cache_file(components)
    if file_format is not None and config.folder is not None:
        file_format = replace(file_format, folder=Path(config.folder))
        if config.to_disk and accelerator.is_main_process:
            Path(config.folder).mkdir(parents=True, exist_ok=True)

    def file_key(caption: str) -> TextCacheKey:
        return TextCacheKey(
            caption=caption, encoder_id=model_identity(config.model),
            max_token_length=config.max_token_length or 75, dtype=str(weight_dtype).removeprefix("torch."),
            encoding=(file_format.encoding if file_format is not None else "")
            + (";weighted_captions" if config.weighted_captions else ""),
        )

    def progress(done: int, total: int) -> None:
        reporter.emit("cache", what="text_encoder_outputs", done=done, total=total)

    captions = group.fixed_captions()
    held_out = group.validation_group()  # the validation loss looks its captions up too
    if held_out is not None:
        captions += held_out.fixed_captions()
    # Disk caches: the main process writes them, then the others read them. In memory, all encode at once.
    with accelerator.main_process_first() if config.to_disk else contextlib.nullcontext():
        cache = cache_text_encoder_outputs(
            captions, encode, file_format, weight_dtype,
            file_key=file_key if config.to_disk else None, progress=progress,
        )
    # Kept in the compute dtype on the CPU: sampling moves them back to the GPU as they were.
    for encoder in encoders:
        encoder.to("cpu")
    if accelerator.device.type == "cuda":
        torch.cuda.empty_cache()
    return cache
