"""The checks every tool makes on its arguments right after parsing them, before anything heavy.

Importing torch, diffusers and transformers takes 5-20 s; a tool that did that first needed as long
to say "file not found". So each tool parses its arguments, checks them here, and imports the heavy
stack only when they are sound (as backend/training/command.py does for the trainers):

- every input exists and is the right kind: a file or a folder, a weights suffix where it matters,
  a diffusers folder with its model_index.json;
- every output can be written (its folder exists or can be made, and is no file), is the right kind,
  and is none of the inputs (`refuse_overwriting_inputs`, the one check every writing tool uses: the
  same path, through a symlink or a hard link, or a name differing only in case on a
  case-insensitive file system);
- numbers are in range.

A problem is an `InputError` that names the flag and the path and says what to do; the runner
prints it and exits with status 2. Standard library only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

from backend.tools.light_cli import InputError

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
Inputs = Iterable[tuple[str, "str | os.PathLike[str] | None"]]  # (flag, path) of each input; None: not given


def _named(flag: str, path: object) -> str:
    # A positional argument has no flag to name (flag "").
    return f"{flag} {path}" if flag else str(path)


def _looked_at(path: Path) -> str:
    # A GUI or a script may run the tool from another folder than the user thinks.
    return "" if path.is_absolute() else f" (looked for {Path.cwd() / path})"


def input_file(path: str | os.PathLike[str], flag: str, *, suffixes: tuple[str, ...] = (), what: str = "file") -> Path:
    """`path` if it is an existing file (with one of `suffixes`, when given)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{_named(flag, path)} is a folder; give the {what} itself")
    if not p.is_file():
        raise InputError(f"{_named(flag, path)}: {what} not found{_looked_at(p)}; check the path")
    if suffixes and p.suffix.lower() not in suffixes:
        raise InputError(
            f"{_named(flag, path)}: expected a {what} ending in {', '.join(suffixes)}, not '{p.suffix or p.name}'"
        )
    return p


def input_folder(path: str | os.PathLike[str], flag: str, *, what: str = "folder") -> Path:
    """`path` if it is an existing folder."""
    p = Path(path)
    if p.is_file():
        raise InputError(f"{_named(flag, path)} is a file; expected a {what}")
    if not p.is_dir():
        raise InputError(f"{_named(flag, path)}: {what} not found{_looked_at(p)}; check the path")
    return p


def input_model(path: str | os.PathLike[str], flag: str) -> Path:
    """`path` if it is a single-file checkpoint (.safetensors/.ckpt/...) or a diffusers folder."""
    p = Path(path)
    if p.is_dir():
        if not (p / "model_index.json").is_file():
            raise InputError(
                f"{_named(flag, path)} is a folder without model_index.json, so not a diffusers model; give the "
                f"model's {' or '.join(WEIGHT_SUFFIXES[:2])} file or its diffusers folder"
            )
        return p
    if not p.exists():
        raise InputError(f"{_named(flag, path)}: model not found{_looked_at(p)}; give the model's .safetensors/.ckpt file "
                         "or its diffusers folder")
    return input_file(p, flag, suffixes=WEIGHT_SUFFIXES, what="model file")


def writable_location(path: str | os.PathLike[str], flag: str) -> None:
    """The folder `path` goes into exists (or can be made) and can be written to."""
    p = Path(os.path.abspath(path))
    ancestor = p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{_named(flag, path)}: {ancestor} is a file, not a folder; choose another location")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{_named(flag, path)}: {ancestor} cannot be written to (no permission or a read-only drive); "
                         "choose another folder")


def output_file(
    path: str | os.PathLike[str], flag: str, *, inputs: Inputs = (), suffixes: tuple[str, ...] = (), why: str = ""
) -> Path:
    """`path` if a file can be written there and it is none of `inputs` (see `refuse_overwriting_inputs`)."""
    p = Path(path)
    if not str(path).strip():
        raise InputError(f"{flag} is empty; give the output file's name")
    if p.is_dir():
        example = p / f"output{suffixes[0] if suffixes else ''}"
        raise InputError(f"{_named(flag, path)} is a folder; give a file name, e.g. {example}")
    if suffixes and p.suffix.lower() not in suffixes:
        raise InputError(f"{_named(flag, path)}: the name must end in {', '.join(suffixes)}")
    writable_location(p, flag)
    refuse_overwriting_inputs(p, flag, inputs, why=why)
    return p


def output_folder(path: str | os.PathLike[str], flag: str, *, inputs: Inputs = ()) -> Path:
    """`path` if a folder can be written there; it is replaced as a whole, so no input may be it or lie in it."""
    p = Path(path)
    if not str(path).strip():
        raise InputError(f"{flag} is empty; give the output folder's name")
    if p.exists() and not p.is_dir():
        raise InputError(f"{_named(flag, path)} is a file; expected a folder")
    writable_location(p, flag)
    refuse_overwriting_inputs(p, flag, inputs, replaces_folder=True)
    return p


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file or folder. When both exist the file system decides
    (os.path.samefile: symlinks, hard links, `..`, case-insensitive names); otherwise the resolved
    paths are compared as the OS compares names (case-insensitively on Windows)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def is_within(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether `path` is `folder` or lies inside it (symlinks resolved)."""
    real = Path(os.path.realpath(path))
    return any(same_file(candidate, folder) for candidate in (real, *real.parents))


def refuse_overwriting_inputs(
    output: str | os.PathLike[str], flag: str, inputs: Inputs, *, replaces_folder: bool = False, why: str = ""
) -> None:
    """Refuse an output that would replace one of the inputs; with `replaces_folder` (an output
    folder written as a whole) also one that holds an input. `why` adds what would be lost."""
    for input_flag, input_path in inputs:
        if input_path is None or not str(input_path).strip():
            continue
        if same_file(output, input_path):
            relation = "is the same file as" if not Path(output).is_dir() else "is the same folder as"
        elif replaces_folder and is_within(input_path, output):
            relation = "is the folder holding"
        else:
            continue
        raise InputError(
            f"{flag} {output} {relation} {input_flag} {input_path}: writing the output would replace the input"
            f"{f' ({why})' if why else ''}; give {flag} another name"
        )


def at_least(value: float | None, flag: str, minimum: float) -> None:
    """`value` (None: not given) is at least `minimum`."""
    if value is not None and not value >= minimum:
        raise InputError(f"{flag} must be {minimum:g} or more, got {value}")


def in_range(value: float | None, flag: str, low: float, high: float, *, low_open: bool = False) -> None:
    """`value` (None: not given) lies in [low, high] (or (low, high] with `low_open`)."""
    if value is None:
        return
    above = value > low if low_open else value >= low
    if not (math.isfinite(value) and above and value <= high):
        bound = "above" if low_open else "at least"
        raise InputError(f"{flag} must be {bound} {low:g} and at most {high:g}, got {value}")


def finite(value: float | None, flag: str) -> None:
    if value is not None and not math.isfinite(value):
        raise InputError(f"{flag} must be a finite number, got {value}")
