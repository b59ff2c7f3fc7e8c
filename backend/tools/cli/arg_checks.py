"""The checks every tool makes on its arguments right after parsing them, before anything heavy.

Importing torch, diffusers and transformers takes 5-20 s; a tool that did that first needed as long
to say "file not found". So each tool parses its arguments, checks them here, and imports the heavy
stack only when they are sound (as backend/training/command.py does for the trainers):

- every path is one line of printable text (no line break, tab or other control character: the
  trainer's rule, `backend/options/values.control_character`), before anything is looked up;
- every input exists and is the right kind: a file or a folder, a weights suffix where it matters,
  a diffusers folder with its model_index.json;
- every output can be written (its folder exists or can be made, and is no file), is the right kind,
  and is none of the inputs (`refuse_overwriting_inputs`, the one check every writing tool uses: the
  same path, through a symlink or a hard link, or a name differing only in case on a
  case-insensitive file system);
- numbers are in range.

A problem is an `InputError` that names the flag and the path and says what to do (a
`backend.messages.msg` text, tool.*); the runner prints it and exits with status 2. Light: the
standard library and the option layer's value checks, no torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

from backend.messages import msg
from backend.options.values import control_character, visible_text
from backend.tools.cli.light_cli import InputError

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
Inputs = Iterable[tuple[str, "str | os.PathLike[str] | None"]]  # (flag, path) of each input; None: not given


def _named(flag: str, path: object) -> str:
    # A positional argument has no flag to name (flag "").
    return f"{flag} {path}" if flag else str(path)


def _looked_at(path: Path) -> str:
    # A GUI or a script may run the tool from another folder than the user thinks.
    return "" if path.is_absolute() else msg("tool.looked_for", " (looked for {path})", path=Path.cwd() / path)


def one_line_path(path: str | os.PathLike[str], flag: str) -> None:
    """Refuse a path holding a line break, a tab or another control character, as the trainer does
    for its paths: such a name breaks the files, logs and command lines that carry it, and what a
    user sees of it is not what is opened."""
    text = os.fspath(path)
    found = control_character(text)
    if found:
        raise InputError(msg(
            "tool.path_control_character", "{flag}: a path must be one line without control characters; {path} has "
            "{found}: remove it", flag=flag or msg("tool.the_path", "the path"), path=visible_text(text), found=found,
        ))


def one_line_name(text: str, flag: str) -> None:
    """The same rule for a name that becomes part of file or folder names (a caption extension,
    folder tokens), as the trainer's `output_name` and `caption_extension`."""
    found = control_character(text)
    if found:
        raise InputError(msg(
            "tool.name_control_character", "{flag}: must be one line without control characters; {text} has {found}: "
            "remove it", flag=flag, text=visible_text(text), found=found,
        ))


def input_file(path: str | os.PathLike[str], flag: str, *, suffixes: tuple[str, ...] = (), what: str = "") -> Path:
    """`path` if it is an existing file (with one of `suffixes`, when given). `what`: the kind of file,
    a noun in the user's language (default: "file")."""
    one_line_path(path, flag)
    what = what or msg("tool.what_file", "file")
    p = Path(path)
    if p.is_dir():
        raise InputError(msg("tool.input_is_folder", "{named} is a folder; give the {what} itself",
                             named=_named(flag, path), what=what))
    if not p.is_file():
        raise InputError(msg("tool.input_not_found", "{named}: {what} not found{looked_for}; check the path",
                             named=_named(flag, path), what=what, looked_for=_looked_at(p)))
    if suffixes and p.suffix.lower() not in suffixes:
        raise InputError(msg(
            "tool.input_wrong_suffix", "{named}: expected a {what} ending in {suffixes}, not '{suffix}'",
            named=_named(flag, path), what=what, suffixes=", ".join(suffixes), suffix=p.suffix or p.name,
        ))
    return p


def input_folder(path: str | os.PathLike[str], flag: str, *, what: str = "") -> Path:
    """`path` if it is an existing folder. `what`: the kind of folder (default: "folder")."""
    one_line_path(path, flag)
    what = what or msg("tool.what_folder", "folder")
    p = Path(path)
    if p.is_file():
        raise InputError(msg("tool.input_is_file", "{named} is a file; expected a {what}",
                             named=_named(flag, path), what=what))
    if not p.is_dir():
        raise InputError(msg("tool.input_not_found", "{named}: {what} not found{looked_for}; check the path",
                             named=_named(flag, path), what=what, looked_for=_looked_at(p)))
    return p


def input_model(path: str | os.PathLike[str], flag: str) -> Path:
    """`path` if it is a single-file checkpoint (.safetensors/.ckpt/...) or a diffusers folder."""
    one_line_path(path, flag)
    p = Path(path)
    if p.is_dir():
        if not (p / "model_index.json").is_file():
            raise InputError(msg(
                "tool.model_folder_without_index", "{named} is a folder without model_index.json, so not a diffusers "
                "model; give the model's .safetensors or .ckpt file or its diffusers folder", named=_named(flag, path),
            ))
        return p
    if not p.exists():
        raise InputError(msg(
            "tool.model_not_found", "{named}: model not found{looked_for}; give the model's .safetensors/.ckpt file or "
            "its diffusers folder", named=_named(flag, path), looked_for=_looked_at(p),
        ))
    return input_file(p, flag, suffixes=WEIGHT_SUFFIXES, what=msg("tool.what_model_file", "model file"))


def writable_location(path: str | os.PathLike[str], flag: str) -> None:
    """The folder `path` goes into exists (or can be made) and can be written to."""
    p = Path(os.path.abspath(path))
    ancestor = p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(msg("tool.output_parent_is_file",
                             "{named}: {ancestor} is a file, not a folder; choose another location",
                             named=_named(flag, path), ancestor=ancestor))
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(msg(
            "tool.output_not_writable", "{named}: {ancestor} cannot be written to (no permission or a read-only drive); "
            "choose another folder", named=_named(flag, path), ancestor=ancestor,
        ))


def output_file(
    path: str | os.PathLike[str], flag: str, *, inputs: Inputs = (), suffixes: tuple[str, ...] = (), why: str = ""
) -> Path:
    """`path` if a file can be written there and it is none of `inputs` (see `refuse_overwriting_inputs`)."""
    p = Path(path)
    if not str(path).strip():
        raise InputError(msg("tool.output_file_empty", "{flag} is empty; give the output file's name", flag=flag))
    one_line_path(path, flag)
    if p.is_dir():
        example = p / f"output{suffixes[0] if suffixes else ''}"
        raise InputError(msg("tool.output_file_is_folder", "{named} is a folder; give a file name, for example {example}",
                             named=_named(flag, path), example=example))
    if suffixes and p.suffix.lower() not in suffixes:
        raise InputError(msg("tool.output_wrong_suffix", "{named}: the name must end in {suffixes}",
                             named=_named(flag, path), suffixes=", ".join(suffixes)))
    writable_location(p, flag)
    refuse_overwriting_inputs(p, flag, inputs, why=why)
    return p


def output_folder(path: str | os.PathLike[str], flag: str, *, inputs: Inputs = ()) -> Path:
    """`path` if a folder can be written there; it is replaced as a whole, so no input may be it or lie in it."""
    p = Path(path)
    if not str(path).strip():
        raise InputError(msg("tool.output_folder_empty", "{flag} is empty; give the output folder's name", flag=flag))
    one_line_path(path, flag)
    if p.exists() and not p.is_dir():
        raise InputError(msg("tool.output_folder_is_file", "{named} is a file; expected a folder",
                             named=_named(flag, path)))
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
        names = {"flag": flag, "output": output, "input_flag": input_flag, "input": input_path,
                 "lost": f" ({why})" if why else ""}
        if same_file(output, input_path) and not Path(output).is_dir():
            raise InputError(msg(
                "tool.output_is_input_file", "{flag} {output} is the same file as {input_flag} {input}: writing the "
                "output would replace the input{lost}; give {flag} another name", **names,
            ))
        if same_file(output, input_path):
            raise InputError(msg(
                "tool.output_is_input_folder", "{flag} {output} is the same folder as {input_flag} {input}: writing the "
                "output would replace the input{lost}; give {flag} another name", **names,
            ))
        if replaces_folder and is_within(input_path, output):
            raise InputError(msg(
                "tool.output_holds_input", "{flag} {output} is the folder holding {input_flag} {input}: writing the "
                "output would replace the input{lost}; give {flag} another name", **names,
            ))


def at_least(value: float | None, flag: str, minimum: float) -> None:
    """`value` (None: not given) is at least `minimum`."""
    if value is not None and not value >= minimum:
        raise InputError(msg("tool.at_least", "{flag} must be {minimum} or more, got {value}",
                             flag=flag, minimum=f"{minimum:g}", value=value))


def in_range(value: float | None, flag: str, low: float, high: float, *, low_open: bool = False) -> None:
    """`value` (None: not given) lies in [low, high] (or (low, high] with `low_open`)."""
    if value is None:
        return
    above = value > low if low_open else value >= low
    if not (math.isfinite(value) and above and value <= high):
        bounds = {"flag": flag, "low": f"{low:g}", "high": f"{high:g}", "value": value}
        if low_open:
            raise InputError(msg("tool.in_range_open", "{flag} must be above {low} and at most {high}, got {value}",
                                 **bounds))
        raise InputError(msg("tool.in_range", "{flag} must be at least {low} and at most {high}, got {value}", **bounds))


def finite(value: float | None, flag: str) -> None:
    if value is not None and not math.isfinite(value):
        raise InputError(msg("tool.finite", "{flag} must be a finite number, got {value}", flag=flag, value=value))
