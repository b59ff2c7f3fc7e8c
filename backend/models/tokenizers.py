"""CLIP tokenizers: where they come from for single files, and sd-scripts' long-prompt chunking.

A single-file checkpoint has no tokenizer. As sd-scripts does, the tokenizer its family declares
(`FamilyDeclaration.hub_tokenizers`: hub id, subfolder, padding with "!") is read from
``<tokenizer_cache_dir>/<hub id with / replaced by _>`` when present, otherwise downloaded from the
hub (and then saved into the cache folder). Offline without a cached copy, the error says which hub
id is missing and how to provide it.

Chunking (``max_token_length`` 150/225): the prompt is tokenized to ``max_token_length + 2`` tokens
and cut into 77-token windows, each ``<BOS> 75 tokens <EOS|PAD>``; windows of tokenizers that pad
with ``!`` (SD 2.x, SDXL TE2) get an ``<EOS>`` where the text runs to the window's end.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import CLIPTokenizer, PreTrainedTokenizerBase, T5TokenizerFast

from backend.families import declaration
from backend.hub import hub_unreachable_reason
from backend.messages import msg

MODEL_MAX_LENGTH = 77
ALLOWED_MAX_TOKEN_LENGTHS = (75, 150, 225)


class TokenizerUnavailableError(RuntimeError):
    """A tokenizer could neither be read from the cache folder nor downloaded."""


def cache_folder(cache_dir: str | Path, hub_id: str) -> Path:
    """sd-scripts' cache layout: ``<cache>/openai_clip-vit-large-patch14``."""
    return Path(cache_dir) / hub_id.replace("/", "_")


# The tokenizer class for each `HubTokenizer.kind`, and the fewest entries a real vocabulary of it has.
_CLASSES: dict[str, type[PreTrainedTokenizerBase]] = {"clip": CLIPTokenizer, "t5": T5TokenizerFast}
_MIN_VOCABULARY = {"clip": 512, "t5": 16}


def _is_usable(tokenizer: PreTrainedTokenizerBase, kind: str = "clip") -> bool:
    # transformers 5 returns an empty tokenizer (just the special tokens) when the hub files are
    # missing offline instead of raising; a CLIP BPE vocab has at least its 512 byte-level symbols,
    # a T5 one more than its three special tokens.
    return len(tokenizer.get_vocab()) >= _MIN_VOCABULARY[kind]


def _unavailable(
    hub_id: str, subfolder: str | None, local: Path | None, reason: str
) -> TokenizerUnavailableError:
    where = str(local) if local else "<folder>/" + hub_id.replace("/", "_")
    if subfolder:
        name = msg("model.hub_tokenizer_subfolder", "{hub_id} (subfolder {subfolder})",
                   hub_id=repr(hub_id), subfolder=repr(subfolder))
    else:
        name = repr(hub_id)
    return TokenizerUnavailableError(msg(
        "model.tokenizer_unavailable",
        "the tokenizer {name} is not cached and could not be downloaded ({reason}). A single-file model has no "
        "tokenizer of its own. Either run once with internet access and --tokenizer_cache_dir set, which saves it "
        "there, or copy a tokenizer folder (vocab.json and merges.txt, or tokenizer.json) to {where} and pass "
        "--tokenizer_cache_dir.", name=name, reason=reason, where=where,
    ))


def _from_hub(hub_id: str, subfolder: str | None, local: Path | None, kind: str = "clip") -> PreTrainedTokenizerBase:
    """The Hugging Face cache first (no network), then a download if the Hub can be reached."""
    cls = _CLASSES[kind]
    try:
        cached = cls.from_pretrained(hub_id, subfolder=subfolder, local_files_only=True)
        if _is_usable(cached, kind):
            return cached
    except (OSError, ValueError):
        pass
    unreachable = hub_unreachable_reason()
    if unreachable:  # said at once, instead of after huggingface_hub's minute of retries
        raise _unavailable(hub_id, subfolder, local, unreachable)
    try:
        return cls.from_pretrained(hub_id, subfolder=subfolder)
    except (OSError, ValueError) as exc:
        raise _unavailable(hub_id, subfolder, local, type(exc).__name__) from exc


def load_hub_tokenizer(
    hub_id: str, subfolder: str | None, pad_with_bang: bool, cache_dir: str | Path | None, kind: str = "clip"
) -> PreTrainedTokenizerBase:
    """A CLIP tokenizer (`kind` "clip", cut to 77 tokens) or a T5 one ("t5", its own maximum length)."""
    local = cache_folder(cache_dir, hub_id) if cache_dir else None
    if local is not None and local.is_dir():
        tokenizer = _CLASSES[kind].from_pretrained(str(local))
        if not _is_usable(tokenizer, kind):
            raise TokenizerUnavailableError(msg(
                "model.tokenizer_cache_empty", "the cached tokenizer folder {folder} holds no usable CLIP vocabulary",
                folder=local,
            ))
    else:
        tokenizer = _from_hub(hub_id, subfolder, local, kind)
        if not _is_usable(tokenizer, kind):
            raise _unavailable(hub_id, subfolder, local, msg("model.tokenizer_no_vocabulary",
                                                             "no vocabulary files were found"))
        if local is not None:
            tokenizer.save_pretrained(str(local))
    if kind != "clip":
        return tokenizer
    if pad_with_bang:
        # The real SD 2.x / SDXL TE2 tokenizers pad with "!" (id 0), as sd-scripts enforces.
        tokenizer.pad_token = "!"
    tokenizer.model_max_length = MODEL_MAX_LENGTH
    return tokenizer


def load_family_tokenizers(family: str, cache_dir: str | Path | None) -> list[PreTrainedTokenizerBase]:
    return [load_hub_tokenizer(entry.hub_id, entry.subfolder, entry.pad_with_bang, cache_dir, entry.kind)
            for entry in declaration(family).hub_tokenizers]


def tokenize_chunks(
    tokenizer: CLIPTokenizer, prompts: list[str], max_token_length: int | None = None
) -> torch.Tensor:
    """Token ids ``[batch, chunks, 77]``; one chunk for ``max_token_length`` None/75."""
    max_token_length = max_token_length or 75
    if max_token_length not in ALLOWED_MAX_TOKEN_LENGTHS:
        raise ValueError(
            f"max_token_length must be one of {ALLOWED_MAX_TOKEN_LENGTHS}, got {max_token_length}"
        )
    ids = tokenizer(
        prompts, padding="max_length", truncation=True, max_length=max_token_length + 2, return_tensors="pt"
    ).input_ids
    return chunk_ids(tokenizer, ids, max_token_length)


def chunk_ids(tokenizer: CLIPTokenizer, ids: torch.Tensor, max_token_length: int) -> torch.Tensor:
    """``[batch, max_token_length + 2]`` ids (start, text, end, padding) -> ``[batch, chunks, 77]``: each chunk
    the start token, its 75 positions and the last position (end or padding)."""
    window = MODEL_MAX_LENGTH - 2
    bos, last = ids[:, :1], ids[:, -1:]
    chunks = []
    pad_is_eos = tokenizer.pad_token_id == tokenizer.eos_token_id
    for start in range(1, max_token_length + 1, window):
        chunk = torch.cat([bos, ids[:, start : start + window], last], dim=1)
        if not pad_is_eos:
            # Text running into the window's end needs its own EOS; an empty window starts with EOS.
            runs_on = (chunk[:, -2] != tokenizer.eos_token_id) & (chunk[:, -2] != tokenizer.pad_token_id)
            chunk[runs_on, -1] = tokenizer.eos_token_id
            empty = chunk[:, 1] == tokenizer.pad_token_id
            chunk[empty, 1] = tokenizer.eos_token_id
        chunks.append(chunk)
    return torch.stack(chunks, dim=1)
