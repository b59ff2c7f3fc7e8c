"""What a generate run will make, decided before torch is imported: the prompts (sd-scripts' syntax, the
command's defaults filled in where a prompt sets nothing), the networks and their weights, the X/Y axes and the
list of images (`Job`s), each with its seed, networks, prompt and place in the grid.

An axis is `AXIS=VALUES`: `network` (a folder: its network files, sorted by the training step or epoch they were
saved at; a glob; or comma-separated files), `weight` (the weight of the network axis' file, or without one of
every --network file), `seed`, `cfg`, `steps`, `sampler` (comma-separated), `prompt` (prompts separated by `|`).
"""

from __future__ import annotations

import glob
import json
import math
import re
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

from backend.messages import msg
from backend.tools.cli.arg_checks import WEIGHT_SUFFIXES, input_file
from backend.tools.cli.light_cli import InputError
from backend.tools.flags.generation import AXES
from backend.training.sample_prompts import PromptFileError, SamplePrompt, parse_prompt_line

NETWORK_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_NUMBERED = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class Axis:
    kind: str
    values: tuple[object, ...]  # network: paths (str); weight, cfg: float; seed, steps: int; sampler, prompt: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Job:
    """One image: its prompt (all settings resolved), seed, networks (path, weight) and grid place."""

    prompt: SamplePrompt
    seed: int
    networks: tuple[tuple[str, float], ...]
    number: int  # 1-based, in the order of the plan
    x: int | None = None
    y: int | None = None


@dataclass
class Plan:
    jobs: list[Job]
    x: Axis | None = None
    y: Axis | None = None
    networks: tuple[tuple[str, float], ...] = ()
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def network_files(self) -> list[str]:
        """Every network file a job uses, each once, in order of first use."""
        return list(dict.fromkeys(path for job in self.jobs for path, _ in job.networks))


def parse_network(text: str, flag: str = "--network") -> tuple[str, float]:
    """`FILE[:WEIGHT]`; a colon that is part of the path (C:\\loras\\a.safetensors) stays in it."""
    path, sep, tail = text.rpartition(":")
    if sep and path and tail and not tail.startswith(("\\", "/")):
        try:
            weight = float(tail)
        except ValueError:
            weight = None
        if weight is not None:
            _finite(weight, f"{flag} {text}")
            return path, weight
    return text, 1.0


def _finite(value: float, where: str) -> None:
    if not math.isfinite(value):
        raise InputError(msg("tool.generate_not_finite", "{where}: the weight must be a finite number", where=where))


def safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The `__metadata__` of a .safetensors file, read without torch ({} for other files or a bad header)."""
    try:
        with open(path, "rb") as file:
            size = struct.unpack("<Q", file.read(8))[0]
            if size > 100_000_000:
                return {}
            header = json.loads(file.read(size))
    except (OSError, struct.error, ValueError):
        return {}
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _save_order(path: Path) -> tuple[float, float, str]:
    """A run's saves in the order they were made: by `ss_steps` (then `ss_epoch`) when recorded, else by the
    number the name ends in (`name-000002`, `name-step00000500`); the last save (no number) comes last."""
    meta = safetensors_metadata(path) if path.suffix.lower() == ".safetensors" else {}
    try:
        return float(meta["ss_steps"]), float(meta.get("ss_epoch", 0)), path.name
    except (KeyError, ValueError):
        pass
    found = _NUMBERED.search(path.stem)
    return (float(found.group(1)) if found else math.inf), 0.0, path.name


def run_network_files(folder: str | Path) -> list[Path]:
    """The network files a training run saved in `folder`, oldest first (see `_save_order`); no state folders,
    no other files."""
    files = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in NETWORK_SUFFIXES]
    return sorted(files, key=_save_order)


def _network_values(text: str) -> list[Path]:
    if Path(text).is_dir():
        files = run_network_files(text)
        if not files:
            raise InputError(msg("tool.generate_axis_no_networks", "--xy network={value}: the folder holds no network "
                                 "files ({suffixes}); choose a training run's output folder",
                                 value=text, suffixes=", ".join(NETWORK_SUFFIXES)))
        return files
    if any(char in text for char in "*?["):
        files = sorted((Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in NETWORK_SUFFIXES),
                       key=_save_order)
        if not files:
            raise InputError(msg("tool.generate_axis_glob_empty", "--xy network={value}: no network file matches; "
                                 "check the pattern", value=text))
        return files
    return [input_file(item.strip(), "--xy network", suffixes=WEIGHT_SUFFIXES,
                       what=msg("tool.what_network_file", "network file"))
            for item in text.split(",") if item.strip()]


def parse_axis(text: str) -> Axis:
    """One `--xy` value, `AXIS=VALUES` (see the module doc); every value checked."""
    kind, sep, raw = text.partition("=")
    kind = kind.strip().lower()
    if not sep or kind not in AXES:
        raise InputError(msg("tool.generate_axis_unknown", "--xy {text}: expected AXIS=VALUES with AXIS one of {axes}",
                             text=text, axes=", ".join(AXES)))
    if not raw.strip():
        raise InputError(msg("tool.generate_axis_empty", "--xy {kind}=: give at least one value", kind=kind))
    if kind == "network":
        files = _network_values(raw.strip())
        return Axis(kind, tuple(str(p) for p in files), tuple(p.stem for p in files))
    if kind == "prompt":
        prompts = tuple(p.strip() for p in raw.split("|") if p.strip())
        return Axis(kind, prompts, prompts)
    items = [item.strip() for item in raw.split(",") if item.strip()]
    values: list[object] = []
    for item in items:
        try:
            if kind in ("weight", "cfg"):
                number = float(item)
                _finite(number, f"--xy {kind}={item}")
                values.append(number)
            elif kind in ("seed", "steps"):
                values.append(int(item))
            else:
                values.append(parse_prompt_line(f"x --ss {item}").sample_sampler)
        except InputError:
            raise
        except (ValueError, PromptFileError) as error:
            detail = str(error) if kind == "sampler" else msg("tool.generate_axis_number", "not a number")
            raise InputError(msg("tool.generate_axis_value", "--xy {kind}: bad value {value} ({detail})",
                                 kind=kind, value=repr(item), detail=detail)) from None
    if kind == "steps" and any(not 1 <= int(v) <= 1000 for v in values):  # type: ignore[call-overload]
        raise InputError(msg("tool.generate_axis_steps", "--xy steps: each value must be 1 to 1000"))
    return Axis(kind, tuple(values), tuple(_label(v) for v in values))


def _label(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_axes(texts: list[str] | None) -> tuple[Axis | None, Axis | None]:
    if not texts:
        return None, None
    if len(texts) != 2:
        raise InputError(msg("tool.generate_axis_count", "--xy takes two axes, X then Y (e.g. --xy network=OUTPUT_FOLDER "
                             "weight=0,0.5,1), got {count}", count=len(texts)))
    x, y = parse_axis(texts[0]), parse_axis(texts[1])
    if x.kind == y.kind:
        raise InputError(msg("tool.generate_axis_twice", "--xy: both axes are {kind}; choose two different axes",
                             kind=x.kind))
    return x, y


def with_defaults(line: str, defaults: dict[str, object], where: str, index: int) -> SamplePrompt:
    """A prompt line in sd-scripts' syntax, the command's defaults put before its own options (a later option
    wins, so the prompt's own `--w`, `--s`, ... keep their values)."""
    text, *own = (" " + line.strip()).split(" --")
    options = [f"{key} {value}" for key, value in defaults.items() if value not in (None, "")]
    joined = " --".join([text.strip(), *options, *(o.strip() for o in own)])
    try:
        return parse_prompt_line(joined, index, where)
    except PromptFileError as error:
        raise InputError(str(error)) from None


def prompt_defaults(args: object) -> dict[str, object]:
    return {"w": args.width, "h": args.height, "s": args.steps, "l": args.cfg,  # type: ignore[attr-defined]
            "ss": args.sampler, "n": args.negative_prompt}  # type: ignore[attr-defined]


def _apply(prompt: SamplePrompt, axis: Axis, value: object, defaults: dict[str, object]) -> SamplePrompt:
    if axis.kind == "cfg":
        return replace(prompt, scale=float(value))  # type: ignore[arg-type]
    if axis.kind == "steps":
        return replace(prompt, sample_steps=int(value))  # type: ignore[call-overload]
    if axis.kind == "sampler":
        return replace(prompt, sample_sampler=str(value))
    if axis.kind == "prompt":
        return replace(with_defaults(str(value), defaults, "--xy prompt", prompt.index), index=prompt.index)
    return prompt


def plan_jobs(prompts: list[SamplePrompt], images_per_prompt: int, seed: int,
              networks: list[tuple[str, float]], x: Axis | None, y: Axis | None,
              defaults: dict[str, object]) -> Plan:
    """Every image to make. Without axes: each prompt `images_per_prompt` times, seeds counted up from the prompt's
    `--d` or from `seed` (prompt by prompt). With axes: one grid per prompt (one in all with a prompt axis), one
    image per cell, all cells of a grid with the prompt's seed unless seed is an axis."""
    jobs: list[Job] = []
    if x is None or y is None:
        counter = 0
        for prompt in prompts:
            for image in range(images_per_prompt):
                first = prompt.seed if prompt.seed is not None else seed + counter
                counter += 1
                jobs.append(Job(prompt, first + (image if prompt.seed is not None else 0), tuple(networks),
                                len(jobs) + 1))
        return Plan(jobs, None, None, tuple(networks))
    grid_prompts = prompts[:1] if "prompt" in (x.kind, y.kind) else prompts
    for index, base in enumerate(grid_prompts):
        for row, y_value in enumerate(y.values):
            for column, x_value in enumerate(x.values):
                prompt, cell_seed, cell_networks = base, base.seed if base.seed is not None else seed + index, networks
                axis_file: str | None = None
                for axis, value in ((x, x_value), (y, y_value)):
                    if axis.kind == "network":
                        axis_file = str(value)
                for axis, value in ((x, x_value), (y, y_value)):
                    if axis.kind == "seed":
                        cell_seed = int(value)  # type: ignore[call-overload]
                    elif axis.kind == "weight":
                        weight = float(value)  # type: ignore[arg-type]
                        cell_networks = ([*networks, (axis_file, weight)] if axis_file is not None
                                         else [(path, weight) for path, _ in networks])
                    else:
                        prompt = _apply(prompt, axis, value, defaults)
                if axis_file is not None and "weight" not in (x.kind, y.kind):
                    cell_networks = [*networks, (axis_file, 1.0)]
                jobs.append(Job(prompt, cell_seed, tuple(cell_networks), len(jobs) + 1, column, row))
    return Plan(jobs, x, y, tuple(networks))


def check_weight_axis(x: Axis | None, y: Axis | None, networks: list[tuple[str, float]]) -> None:
    kinds = {axis.kind for axis in (x, y) if axis is not None}
    if "weight" in kinds and "network" not in kinds and not networks:
        raise InputError(msg("tool.generate_weight_axis_no_network", "--xy weight=...: there is no network to weigh; "
                             "add --network FILE, or make the other axis network=..."))


def image_name(plan: Plan, job: Job, stamp: str) -> str:
    """`<stamp>-NNNN.png`; a grid's cell `<stamp>-xNN-yNN.png`, from the second grid on (one per prompt)
    `<stamp>-gN-xNN-yNN.png`, so no grid's cells are written over by the next one's."""
    if job.x is None or job.y is None or plan.x is None or plan.y is None:
        return f"{stamp}-{job.number:04d}.png"
    grid = (job.number - 1) // (len(plan.x.values) * len(plan.y.values)) + 1
    return f"{stamp}{f'-g{grid}' if grid > 1 else ''}-x{job.x + 1:02d}-y{job.y + 1:02d}.png"
