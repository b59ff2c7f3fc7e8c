"""Is this file readable model weights? Checked where model files are opened, before any tensor is read.

A downloaded checkpoint goes wrong in a few typical ways, and each gets a `ModelFileError` that
names the file, says what happened and what to do (instead of safetensors' "incomplete metadata,
file not fully covered" or torch's "failed finding central directory"):

- cut short (interrupted download or copy): a .safetensors file's header records the size of
  every tensor, so the expected file size is known; a zip `.ckpt` keeps its index at the very end;
- empty (0 bytes);
- no model file at all: a Git LFS pointer (a repository cloned without git-lfs), a web page saved
  instead of the file (a login or error page), some other text;
- the other format under the wrong suffix (a zip/pickle checkpoint named .safetensors, or the
  reverse);
- a damaged safetensors header (not JSON, offsets that do not fit the shapes).

Light: standard library only, so the checks cost a header read and never import torch. Messages are
`backend.messages.msg` texts (model.*), in the user's language.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.messages import msg
from backend.models.errors import ModelFileError

# Bytes per element of each safetensors dtype (safetensors' own names).
DTYPE_SIZES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4,
    "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip
_MAX_HEADER = 100 * 1024 * 1024  # safetensors refuses larger headers too
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = 0x80


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: dict[str, dict[str, Any]]  # name -> {"dtype", "shape", "data_offsets"}
    metadata: dict[str, str]
    data_start: int  # file offset of the first tensor byte

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(info["shape"]) for name, info in self.tensors.items()}


def again() -> str:
    """What to do about a damaged or incomplete download (made when needed: the language may change)."""
    return msg("model.fix_download_again", "download or copy it again")


def cut_short(path: str | Path, size: int, expected: int, in_header: bool = False) -> ModelFileError:
    if in_header:
        problem = msg(
            "model.cut_short_in_header",
            "the file ends after {size} bytes, inside its header (at least {expected} bytes expected): the download "
            "or copy was cut short", size=f"{size:,}", expected=f"{expected:,}",
        )
    else:
        problem = msg(
            "model.cut_short", "the file ends after {size} of {expected} bytes: the download or copy was cut short",
            size=f"{size:,}", expected=f"{expected:,}",
        )
    return ModelFileError(path, problem, again())


def _empty(path: Path) -> ModelFileError:
    return ModelFileError(
        path, msg("model.file_empty", "the file is empty (0 bytes): the download or copy did not finish"), again()
    )


def _head(path: Path, size: int = 4096) -> bytes:
    with open(path, "rb") as file:
        return file.read(size)


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 2 <= struct.unpack("<Q", head[:8])[0] <= _MAX_HEADER


def foreign_content(path: Path, head: bytes) -> ModelFileError | None:
    """The error for a file whose first bytes show it is no model weights at all, else None."""
    if head.startswith(b"version https://git-lfs"):
        return ModelFileError(
            path,
            msg("model.git_lfs_pointer",
                "this is a Git LFS pointer (a small text file standing in for the weights), not the model"),
            msg("model.fix_git_lfs", "run `git lfs pull` in the cloned repository, or download the file itself"),
        )
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<")):
        return ModelFileError(
            path,
            msg("model.web_page",
                "this is a web page (HTML), not model weights: the download saved an error or login page"),
            msg("model.fix_web_page",
                "download the file again (some sites need you to log in or accept the licence first)"),
        )
    if head and _is_text(head):
        return ModelFileError(
            path,
            msg("model.text_file", "this is a text file (it starts with {start}), not model weights",
                start=repr(head[:40].decode("utf-8", "replace"))),
            msg("model.fix_check_path", "check that the path names the model file"),
        )
    return None


def _is_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in decoded)


def read_safetensors_header(path: str | Path) -> SafetensorsHeader:
    """The header of a .safetensors file, after checking that the file holds every byte it announces.

    The format: an 8-byte little-endian header size, a JSON header {name: {dtype, shape,
    data_offsets}} (plus "__metadata__"), then the tensor data."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise _empty(path)
    head = _head(path)
    if not _looks_like_safetensors(head):
        raise foreign_content(path, head) or _wrong_format(path, head, ".safetensors")
    header_size = struct.unpack("<Q", head[:8])[0]
    if 8 + header_size > size:
        raise cut_short(path, size, 8 + header_size, in_header=True)
    with open(path, "rb") as file:
        file.seek(8)
        raw = file.read(header_size)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, msg("model.header_not_json", "its header is not valid JSON ({error})", error=exc)) from None
    if not isinstance(header, dict):
        raise _damaged(path, msg("model.header_not_object", "its header is not a JSON object"))
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, Mapping):
        raise _damaged(path, msg("model.metadata_not_object", "its __metadata__ is not a JSON object"))
    end = 0
    for name, info in header.items():
        end = max(end, _tensor_end(path, name, info))
    data_start = 8 + header_size
    if data_start + end > size:
        raise cut_short(path, size, data_start + end)
    return SafetensorsHeader(header, {str(k): str(v) for k, v in metadata.items()}, data_start)


def _tensor_end(path: Path, name: str, info: object) -> int:
    """Where the tensor's data ends (relative to the data start), after checking its entry."""
    try:
        assert isinstance(info, dict)
        begin, end = (int(x) for x in info["data_offsets"])
        shape = [int(x) for x in info["shape"]]
        dtype = str(info["dtype"])
    except (AssertionError, KeyError, TypeError, ValueError):
        raise _damaged(
            path, msg("model.tensor_entry_malformed", "the header entry of tensor {name} is malformed", name=repr(name))
        ) from None
    if not 0 <= begin <= end or min(shape, default=0) < 0:
        raise _damaged(path, msg("model.tensor_offsets_impossible",
                                 "the header gives tensor {name} impossible offsets or shape", name=repr(name)))
    item = DTYPE_SIZES.get(dtype)
    if item is not None and math.prod(shape) * item != end - begin:
        raise _damaged(path, msg(
            "model.tensor_size_wrong", "the header gives tensor {name} ({dtype}, shape {shape}) {size} bytes instead "
            "of {expected}", name=repr(name), dtype=dtype, shape=shape, size=f"{end - begin:,}",
            expected=f"{math.prod(shape) * item:,}",
        ))
    return end


def _damaged(path: Path, detail: str) -> ModelFileError:
    """`detail`: what in the file is wrong, a whole clause (msg text)."""
    return ModelFileError(path, msg("model.file_damaged", "the file is damaged: {detail}", detail=detail), again())


def _rename_to(suffix: str) -> str:
    return msg("model.fix_rename", "rename it to {suffix}", suffix=suffix)


def _wrong_format(path: Path, head: bytes, expected: str) -> ModelFileError:
    if expected == ".safetensors" and (head.startswith(_ZIP_MAGIC) or head[:1] == bytes([_PICKLE_PROTOCOL])):
        return ModelFileError(
            path, msg("model.pickle_named_safetensors", "this is a PyTorch checkpoint (pickle), not a .safetensors file"),
            _rename_to(".ckpt"),
        )
    if expected == ".ckpt" and _looks_like_safetensors(head):
        return ModelFileError(
            path, msg("model.safetensors_named_ckpt", "this is a .safetensors file, not a PyTorch checkpoint"),
            _rename_to(".safetensors"),
        )
    if expected == ".safetensors":
        problem = msg("model.not_safetensors", "this is not a .safetensors file: its first bytes are not that format's")
    else:
        problem = msg("model.not_pickle", "this is not a PyTorch checkpoint (.ckpt/.pt/.pth/.bin): its first bytes "
                      "are not that format's")
    return ModelFileError(
        path, problem, msg("model.fix_check_file", "check the file; if it is a model, download or copy it again")
    )


def unknown_suffix_error(path: str | Path) -> ModelFileError:
    """For a file whose suffix is no model format: what its content is, when the first bytes tell."""
    path = Path(path)
    head = _head(path) if path.stat().st_size else b""
    if _looks_like_safetensors(head):
        return ModelFileError(
            path, msg("model.safetensors_other_suffix", "this is a .safetensors file under another suffix"),
            _rename_to(".safetensors"),
        )
    if head.startswith(_ZIP_MAGIC) or head[:1] == bytes([_PICKLE_PROTOCOL]):
        return ModelFileError(
            path, msg("model.pickle_other_suffix", "this is a PyTorch checkpoint under another suffix"),
            _rename_to(".ckpt"),
        )
    if head.startswith(b"GGUF"):
        return ModelFileError(
            path, msg("model.gguf", "this is a GGUF file (quantized weights for inference), which cannot be trained"),
            msg("model.fix_gguf", "give the model's .safetensors or diffusers release"),
        )
    return ModelFileError(
        path, msg("model.unknown_suffix", "expected a diffusers folder or a .safetensors/.ckpt/.pt/.pth/.bin file"),
        msg("model.fix_give_model", "give the model file or folder itself"),
    )


def check_weights_file(path: str | Path) -> None:
    """The header-level checks of any weights file (a LoRA as much as a model), chosen by its suffix."""
    if Path(path).suffix.lower() == ".safetensors":
        read_safetensors_header(path)
    else:
        check_pickle_file(path)


def check_pickle_file(path: str | Path) -> None:
    """What can be known of a .ckpt/.pt/.bin without unpickling: not empty, a zip or pickle at all, and
    for the zip format (torch.save's default) its index, which sits at the very end, present."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise _empty(path)
    head = _head(path)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                entries = archive.infolist()
        except (zipfile.BadZipFile, OSError):
            raise ModelFileError(
                path, msg("model.zip_index_missing", "the file is cut short or damaged: the index of its zip archive, "
                          "at the end of the file, is missing ({size} bytes)", size=f"{size:,}"), again(),
            ) from None
        expected = max((e.header_offset + e.compress_size for e in entries), default=0)
        if expected > size:
            raise cut_short(path, size, expected)
        return
    if head[:1] != bytes([_PICKLE_PROTOCOL]):
        raise foreign_content(path, head) or _wrong_format(path, head, ".ckpt")


def pickle_load_error(path: str | Path, exc: BaseException) -> ModelFileError:
    """torch.load's failure on a file that passed `check_pickle_file`, said in plain words."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "Weights only load failed" in str(exc):
        return ModelFileError(
            path, msg("model.pickle_objects", "it holds Python objects besides tensors, which are not loaded because "
                      "unpickling them could run code from the file"),
            msg("model.fix_pickle_objects", "use the model's .safetensors release, or convert this file with a tool "
                "you trust"),
        )
    if isinstance(exc, EOFError) or "unexpected EOF" in str(exc):
        return ModelFileError(path, msg("model.pickle_cut_short", "the file is cut short ({error})", error=text), again())
    return ModelFileError(
        path, msg("model.pickle_unreadable", "it cannot be read as a PyTorch checkpoint ({error})",
                  error=f"{type(exc).__name__}: {text}"), again(),
    )
