"""The Generate page's values -> the command line of `python -m backend.tools.generate`, checked before it starts.

Pure (no gradio, no torch): `generate_argv` turns the page's named values into the tool's argv, refusing what the
page itself can tell is wrong (no model, no prompt, a weight or number that is no number, half an X/Y grid), each
problem naming its field; `check_argv` then runs the tool's own checks in this process (its parser and
`check_args`, torch-free: files, families' part files, axes, ranges), so a missing network file or an empty
output folder of a run is reported before a subprocess loads anything. The checks are the tool's, not a copy.

The page's X/Y values are typed one per line or comma-separated (a prompt axis: one prompt a line), and passed
as the tool's `AXIS=VALUES` (`backend/tools/generation/plan.py`). A queued generation is listed by `queue_name`.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from backend.families import declaration
from backend.messages import msg
from backend.tools.cli.light_cli import InputError
from backend.tools.flags.generation import AXES, GENERATE
from backend.tools.generation.generate import build_parser, check_args
from backend.tools.generation.plan import NETWORK_SUFFIXES, Plan
from gui.backend_process import venv_python

NETWORK_SLOTS = 4  # rows of network file + weight (sd-webui-additional-networks had 5 slots)
# The page's starting values: the tool's defaults (backend/tools/flags/generation.py), the device as the tool's.
DEFAULTS: dict[str, Any] = {
    flag.name: flag.default for flag in GENERATE.flags if flag.kind not in ("rows", "list")
}
DEFAULTS.update({
    "model_type": "", "v_parameterization": False, "prompt": "", "embedding": "", "seed": "", "clip_skip": "",
    "x_axis": "", "x_values": "", "y_axis": "", "y_values": "",
    **{f"network_{n}": "" for n in range(1, NETWORK_SLOTS + 1)},
    **{f"weight_{n}": "1.0" for n in range(1, NETWORK_SLOTS + 1)},
})  # fmt: skip
INTEGERS = ("width", "height", "steps", "seed", "images_per_prompt", "clip_skip")
NAME_PROMPT_CHARS = 40  # of the first prompt in a queued generation's name
FLOATS = ("cfg",)


class GenerateInputError(ValueError):
    """What the page's values cannot run as, every problem found (one line each)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _lines(value: Any) -> list[str]:
    return [line.strip() for line in _text(value).splitlines() if line.strip()]


def part_files(model_type: str) -> tuple[str, ...]:
    """The flags naming the model type's parts given as files of their own (its --vae, FLUX.1's --clip_l ...);
    every family's when no type is chosen."""
    from backend.families import model_file_options

    return declaration(model_type).model_files if model_type else model_file_options()


def _number(name: str, value: Any, problems: list[str]) -> str | None:
    text = _text(value)
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is None or (name in INTEGERS and not number.is_integer()):
        expected = (
            msg("gui.generate.whole_number", "a whole number")
            if name in INTEGERS
            else msg("gui.generate.a_number", "a number")
        )
        problems.append(
            msg(
                "gui.generate.bad_number",
                "--{name}: {value} is not {expected}",
                name=name,
                value=repr(text),
                expected=expected,
            )
        )
        return None
    return str(int(number)) if name in INTEGERS else text


def _networks(values: Mapping[str, Any], problems: list[str]) -> list[str]:
    """`FILE:WEIGHT` of each network row with a file (an empty weight is 1)."""
    found = []
    for slot in range(1, NETWORK_SLOTS + 1):
        path, weight = _text(values.get(f"network_{slot}")), _text(values.get(f"weight_{slot}")) or "1"
        if not path:
            continue
        try:
            number = float(weight)
        except ValueError:
            number = float("nan")
        if number != number or number in (float("inf"), float("-inf")):
            problems.append(
                msg(
                    "gui.generate.bad_weight",
                    "network {slot} ({path}): the weight {weight} is not a "
                    "number; write e.g. 0.8 (negative weights work too)",
                    slot=slot,
                    path=path,
                    weight=repr(weight),
                )
            )
            continue
        found.append(f"{path}:{weight}")
    return found


def axis_value(kind: str, text: Any) -> str:
    """The page's values of an axis as the tool's VALUES: prompts joined by `|`, others by commas."""
    lines = _lines(text)
    return "|".join(lines) if kind == "prompt" else ",".join(lines)


def _axes(values: Mapping[str, Any], problems: list[str]) -> list[str]:
    chosen = {name: _text(values.get(f"{name}_axis")) for name in ("x", "y")}
    if not any(chosen.values()):
        return []
    if not all(chosen.values()):
        problems.append(
            msg(
                "gui.generate.one_axis",
                "X/Y grid: choose both an X and a Y axis (or neither for single images)",
            )
        )
        return []
    argv = []
    for name, kind in chosen.items():
        if kind not in AXES:
            problems.append(
                msg("gui.generate.unknown_axis", "X/Y grid: unknown axis {axis}", axis=repr(kind))
            )
            continue
        text = axis_value(kind, values.get(f"{name}_values"))
        if not text:
            problems.append(
                msg(
                    "gui.generate.axis_no_values",
                    "X/Y grid: the {axis} axis ({kind}) has no values",
                    axis=name.upper(),
                    kind=kind,
                )
            )
        argv.append(f"{kind}={text}")
    return argv


def generate_argv(values: Mapping[str, Any], python: str | None = None) -> list[str]:
    """The command that runs the page's `values` (named as the tool's flags; see DEFAULTS). Raises
    GenerateInputError with every problem the values show by themselves."""
    problems: list[str] = []
    model = _text(values.get("pretrained_model_name_or_path"))
    if not model:
        problems.append(
            msg(
                "gui.generate.no_model",
                "--pretrained_model_name_or_path: choose the base model (a "
                ".safetensors/.ckpt file or a diffusers folder)",
            )
        )
    outdir = _text(values.get("outdir"))
    if not outdir:
        problems.append(
            msg("gui.generate.no_outdir", "--outdir: choose the folder the images are written to")
        )
    prompts = _lines(values.get("prompt"))
    if not prompts:
        problems.append(msg("gui.generate.no_prompt", "--prompt: write at least one prompt (one a line)"))
    argv = ["--pretrained_model_name_or_path", model, "--outdir", outdir]
    model_type = _text(values.get("model_type"))
    for name in part_files(model_type):
        if _text(values.get(name)):
            argv += [f"--{name}", _text(values.get(name))]
    if values.get("v_parameterization"):
        argv.append("--v_parameterization")
    for network in _networks(values, problems):
        argv += ["--network", network]
    for embedding in _lines(values.get("embedding")):
        argv += ["--embedding", embedding]
    for prompt in prompts:
        argv += ["--prompt", prompt]
    if _text(values.get("negative_prompt")):
        argv += ["--negative_prompt", _text(values.get("negative_prompt"))]
    for name in (*INTEGERS, *FLOATS):
        number = _number(name, values.get(name), problems)
        if number is not None:
            argv += [f"--{name}", number]
    for name in ("sampler", "precision", "device"):
        if _text(values.get(name)):
            argv += [f"--{name}", _text(values.get(name))]
    axes = _axes(values, problems)
    if axes:
        argv += ["--xy", *axes]
    if problems:
        raise GenerateInputError(problems)
    return [python or venv_python(), "-m", "backend.tools.generate", *argv]


def _raise_input_error(message: str) -> None:
    raise InputError(message)


def check_argv(argv: Sequence[str]) -> Plan:
    """The tool's own checks on `argv` (as `generate_argv` made it), in this process and without torch: the
    files, the families' part files, the axes, the ranges. Returns the plan of the images; raises
    GenerateInputError with the tool's message."""
    parser: argparse.ArgumentParser = build_parser()
    parser.error = _raise_input_error  # type: ignore[method-assign]  # an InputError, not sys.exit
    try:
        return check_args(parser.parse_args(list(argv[3:])))
    except InputError as error:
        raise GenerateInputError([str(error)]) from None


def run_saves(record: Mapping[str, Any]) -> list[str]:
    """The network files a recorded training run saved (its epoch/step saves and the last), in save order, that
    still exist: an X axis of "the saved epochs of a run"."""
    paths = [str(p) for p in record.get("checkpoints") or [] if p]
    if record.get("output"):
        paths.append(str(record["output"]))
    return [
        p for p in dict.fromkeys(paths) if Path(p).is_file() and Path(p).suffix.lower() in NETWORK_SUFFIXES
    ]


def saves_axis_text(paths: Sequence[str]) -> str:
    """The X values for those files: one a line, or their folder when a path holds a comma (the values are
    comma-separated; a folder gives its network files in save order)."""
    if any("," in path for path in paths):
        return str(Path(paths[-1]).parent)
    return "\n".join(paths)


def queue_name(values: Mapping[str, Any]) -> str:
    """What the Queue page names a queued generation: its output folder's name and its first prompt (without the
    prompt's own options such as `--w 512`), shortened: "epochs: sks dog, in a park"."""
    folder = re.split(r"[\\/]", _text(values.get("outdir")).rstrip("\\/"))[-1]
    prompts = _lines(values.get("prompt"))
    prompt = re.split(r"\s--\w", f" {prompts[0]}" if prompts else "")[0].strip()
    if len(prompt) > NAME_PROMPT_CHARS:
        prompt = prompt[: NAME_PROMPT_CHARS - 1].rstrip() + "…"
    return ": ".join(part for part in (folder, prompt) if part)
