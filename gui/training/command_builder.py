"""Turn the GUI's named values into a run: the config TOML, a JSON snapshot and the launch argv.

Torch-free (the GUI process stays light): only the option schema is read, as data. The trainer
gets its options exactly as a user would pass them by hand:

    <venv python> -m accelerate.commands.launch --quiet [accelerate flags] -m backend.<command> --config_file run.toml

The TOML holds only what differs from the schema defaults and never a secret; the values are
checked against the schema first, so a bad value is reported here, naming the option, instead of
by a trainer process that has already started.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write_json
from backend.messages import msg
from backend.options import OptionError, options_for, write_config
from backend.options.names import names_for, unknown_name_message
from backend.options.values import from_value, subject_problem
from gui.backend_process import venv_python
from gui.form_text import text_problem

# `accelerate launch` flags the GUI may set (accelerate 1.x names), by kind; emitted in this order,
# each only when set. `config_file` is accelerate's own config (DeepSpeed/FSDP set-ups).
ACCELERATE_FLAGS: dict[str, str] = {
    "config_file": "str",
    "cpu": "bool",
    "multi_gpu": "bool",
    "gpu_ids": "str",
    "num_processes": "int",
    "num_machines": "int",
    "machine_rank": "int",
    "main_process_ip": "str",
    "main_process_port": "int",
    "mixed_precision": "str",
    "num_cpu_threads_per_process": "int",
    "dynamo_backend": "str",
}

# Extra (GUI-only) snapshot keys that look like credentials are dropped like schema secrets.
_SECRET_NAME = re.compile(r"token|api_key|password|secret", re.IGNORECASE)


@dataclass(frozen=True)
class PreparedRun:
    config_path: Path
    snapshot_path: Path
    argv: list[str]


def _is_unset(value: Any) -> bool:
    # An empty text box means "not set" (the default applies), not an empty string option.
    return value is None or value == ""


def _normalise(kind: str, value: Any) -> Any:
    """What widgets hand over, in the shape the schema expects (Gradio numbers can be 4.0 for 4)."""
    if isinstance(value, tuple):
        return list(value)
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def validate_values(command: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The set values converted and checked against the schema (aliases resolved), or `OptionError`
    listing every problem, each naming its option."""
    names = names_for(command)
    converted: dict[str, Any] = {}
    invalid: set[str] = set()
    problems: list[str] = []
    for key, raw in values.items():
        option = names.get(key)
        if option is None:
            problems.append(unknown_name_message(key, command))
        elif option.cli_only:
            problems.append(msg(
                "gui.command.cli_only", '"{name}" works only on the command line (--{name}), not in a run config', name=key
            ))  # fmt: skip
        elif not _is_unset(raw):
            try:
                converted[option.name] = from_value(option, _normalise(option.kind, raw))
            except ValueError as error:
                problems.append(subject_problem(key, str(error)))
                invalid.add(option.name)
                continue
            # What the form shows is what runs: no text it cannot show (gui/form_text.py).
            if unshowable := text_problem(converted[option.name]):
                problems.append(subject_problem(key, unshowable))
                invalid.add(option.name)
    for option in options_for(command).values():
        if option.required and option.name not in converted and option.name not in invalid:
            problems.append(msg("gui.command.required", '"{name}" is required', name=option.name))
    if problems:
        raise OptionError(problems)
    return converted


def write_run_config(command: str, values: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate `values` and write the run's TOML (non-default values only, no secrets), atomically."""
    return write_config(argparse.Namespace(**validate_values(command, values)), command, path)


def run_stem(values: Mapping[str, Any], when: float | None = None) -> Path:
    """`<output_dir>/<output_name>_<YYYYMMDD-HHMMSS>`: where a run's config and snapshot go."""
    output_dir = values.get("output_dir")
    if _is_unset(output_dir):
        raise OptionError([msg("gui.command.required", '"{name}" is required', name="output_dir")])
    name = values.get("output_name") or "last"  # the trainer's default file name
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if when is None else when))
    return Path(os.fspath(output_dir)) / f"{name}_{stamp}"


def write_snapshot(
    command: str,
    values: Mapping[str, Any],
    path: str | os.PathLike[str],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """The whole form as JSON (every value, plus GUI-only keys in `extra`), secrets removed.

    Unlike the TOML it keeps defaults and empty fields, so loading it restores the form exactly.
    """
    options = options_for(command)
    snapshot: dict[str, Any] = {"command": command}
    for key, value in {**values, **(extra or {})}.items():
        option = options.get(key)
        secret = option.secret if option is not None else bool(_SECRET_NAME.search(key))
        if not secret:
            snapshot[key] = os.fspath(value) if isinstance(value, os.PathLike) else value
    atomic_write_json(snapshot, path)
    return Path(path)


def accelerate_args(settings: Mapping[str, Any] | None) -> list[str]:
    """`accelerate launch` flags for the settings that are set (None, "" and False are left out)."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(ACCELERATE_FLAGS))
    if unknown:
        raise ValueError(msg(
            "gui.command.unknown_accelerate", "unknown accelerate setting(s) {names}; expected {known}",
            names=", ".join(unknown), known=", ".join(ACCELERATE_FLAGS),
        ))  # fmt: skip
    args: list[str] = []
    for name, kind in ACCELERATE_FLAGS.items():
        value = settings.get(name)
        if _is_unset(value) or value is False:
            continue
        if kind == "bool":
            if value is not True:
                raise ValueError(msg(
                    "gui.command.accelerate_bool", 'accelerate setting "{name}" expects true or false, got {value}',
                    name=name, value=repr(value),
                ))  # fmt: skip
            args.append(f"--{name}")
            continue
        if isinstance(value, str) and (unshowable := text_problem(value)):
            raise ValueError(msg(
                "gui.command.accelerate_unshowable", 'accelerate setting "{name}" {problem}', name=name, problem=unshowable
            ))  # fmt: skip
        if kind == "int":
            value = _normalise(kind, value)
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(msg(
                    "gui.command.accelerate_int", 'accelerate setting "{name}" expects an integer, got {value}',
                    name=name, value=repr(value),
                ))  # fmt: skip
        args += [f"--{name}", str(_normalise(kind, value))]
    return args


def build_command(
    command: str,
    config_path: str | os.PathLike[str],
    accelerate: Mapping[str, Any] | None = None,
    python: str | None = None,
    trainer_args: Sequence[str] = (),
) -> list[str]:
    """The launch argv (a list, never a shell string); `trainer_args` go after the config, e.g. ["--preflight"]."""
    options_for(command)  # an unknown command is an error here, not in the started process
    return [
        python or venv_python(),
        "-m",
        "accelerate.commands.launch",
        "--quiet",  # a failed single-process run ends with the trainer's message, not accelerate's traceback
        *accelerate_args(accelerate),
        "-m",
        f"backend.{command}",
        "--config_file",
        str(Path(config_path).resolve()),
        *trainer_args,
    ]


def plan_run(
    command: str,
    values: Mapping[str, Any],
    accelerate: Mapping[str, Any] | None = None,
    python: str | None = None,
    when: float | None = None,
) -> PreparedRun:
    """A run's file names and argv, every value checked first (all problems at once); writes nothing."""
    validate_values(command, values)
    accelerate_args(accelerate)
    stem = run_stem(values, when)
    config_path = stem.with_suffix(".toml")
    return PreparedRun(config_path, stem.with_suffix(".json"), build_command(command, config_path, accelerate, python))


def write_run_files(
    plan: PreparedRun,
    command: str,
    values: Mapping[str, Any],
    accelerate: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """The planned run's TOML and JSON snapshot (the values were checked by `plan_run`)."""
    write_run_config(command, values, plan.config_path)
    # Nested: accelerate's mixed_precision is not the trainer option of the same name.
    snapshot_extra = {**(extra or {}), "accelerate": dict(accelerate or {})}
    write_snapshot(command, values, plan.snapshot_path, snapshot_extra)


def prepare_run(
    command: str,
    values: Mapping[str, Any],
    accelerate: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    python: str | None = None,
    when: float | None = None,
) -> PreparedRun:
    """Everything a Start button needs: the TOML and JSON snapshot beside the outputs, and the argv."""
    plan = plan_run(command, values, accelerate, python, when)  # every problem before any file is written
    write_run_files(plan, command, values, accelerate, extra)
    return plan
