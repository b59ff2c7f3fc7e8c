"""Import kohya_ss GUI LoRA, DreamBooth, Fine-tuning, Textual Inversion and LECO configs (the JSON its Save button
writes), the way kohya_ss users move over.

    result = convert_kohya_config(json.loads(text))   # pure: reads the schema, touches no file
    write_run_files(result, "run.toml")               # the run TOML (and the sample prompt file)

`ImportResult` holds the trainer command, our option values (checked against the schema, only
those that differ from its defaults), what the GUI needs besides (its network type, the
`accelerate launch` settings, the sample prompt text) and a report: every key that found no home,
with the reason, plus warnings where a value was converted rather than copied. The mapping
follows kohya_ss v26 `lora_gui.py: train_model` (`dreambooth_gui.py` for DreamBooth configs, whose text encoder
settings are in `dreambooth_steps.py`; `finetune_gui.py` for Fine-tuning configs, whose metadata steps and text
encoder rates are in `finetune_steps.py`; `textual_inversion_gui.py` for Textual Inversion configs, whose template
and DreamBooth leftovers are in `textual_inversion_steps.py`; `leco_gui.py` for LECO configs, whose model-dependent
keys and network type are in `leco_steps.py`): the tables are in `tables.py` (keys)
and `network.py` (LoRA types), the pass over the keys in `convert.py`, the FLUX.1 section in
`flux_steps.py`, and FLUX.1 dev or schnell (`ImportResult.model_type`) in `model_choice.py`.

Without the GUI:

    python -m gui.kohya_import CONFIG.json --toml OUT.toml

writes OUT.toml (and OUT_prompts.txt when sampling is on), prints the report and the command that
trains with it, the same argv the GUI runs: `<venv python> -m accelerate.commands.launch ... -m
backend.<command> --config_file OUT.toml`, from the repo root. The venv's interpreter runs its own
accelerate, so it works without activating the venv and never picks up another `accelerate` on PATH.
Exit status 0; 1 when the TOML was written but the trainer's validation refuses it (e.g. no
output_dir in the kohya_ss config); 2 for a file that is not a kohya_ss LoRA config or one this
trainer cannot train (SD3, Chroma, an SDXL model with flux1_checkbox on, ...).

Light: the standard library, the option schema and the command builder; never torch or gradio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write
from backend.messages import current_language, msg
from backend.options import OptionError, parse_args, write_config
from backend.options.values import show
from gui.backend_process import REPO
from gui.i18n import Translator, available_languages
from gui.kohya_import.convert import (
    HIDDEN,
    REASONS,
    ImportResult,
    KohyaImportError,
    Unmapped,
    convert_kohya_config,
)
from gui.kohya_import.network import NETWORK_TYPES
from gui.training.command_builder import build_command
from gui.training.command_export import format_bash, format_cmd

__all__ = [
    "NETWORK_TYPES",
    "REASONS",
    "ImportResult",
    "KohyaImportError",
    "Unmapped",
    "convert_kohya_config",
    "format_report",
    "report_titles",
    "write_run_files",
]


def write_run_files(result: ImportResult, toml_path: str | os.PathLike[str]) -> list[Path]:
    """Write the run TOML, and before it the sample prompt file `<stem>_prompts.txt` beside it when
    there are prompts (atomically, both); returns the paths written."""
    toml_path = Path(toml_path)
    written: list[Path] = []
    options = dict(result.options)
    if result.sample_prompts_text:
        prompts = toml_path.with_name(f"{toml_path.stem}_prompts.txt").resolve()
        with atomic_write(prompts) as file:
            file.write(result.sample_prompts_text.rstrip("\n") + "\n")
        options["sample_prompts"] = str(prompts)
        written.append(prompts)
    written.append(write_config(argparse.Namespace(**options), result.command, toml_path))
    return written


def format_report(result: ImportResult, titles: Mapping[str, str] | None = None) -> str:
    """The report as text: unmapped keys grouped by reason, then the warnings. `titles` translates the
    headings (REASONS keys plus "converted", see `report_titles`); the details are messages made in the
    process language (backend/messages.py), naming keys and values as written."""
    titles = {**REASONS, "converted": "Converted", **(titles or {})}
    lines: list[str] = []
    for reason in REASONS:
        entries = [entry for entry in result.unmapped if entry.reason == reason]
        if entries:
            lines.append(f"{titles[reason]}:")
            lines += [f"  {entry.key} = {_shown(entry.value)}: {entry.detail}" for entry in entries]
    if result.warnings:
        lines.append(f"{titles['converted']}:")
        lines += [f"  {warning}" for warning in result.warnings]
    return "\n".join(lines)


def report_titles(t: Translator) -> dict[str, str]:
    """The report's headings in `t`'s language (REASONS keys plus "converted")."""
    return {key: t.t(f"ui.kohya_reason.{key}") for key in (*REASONS, "converted")}


def _shown(value: Any) -> str:
    return HIDDEN if value == HIDDEN else show(value)


# --- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gui.kohya_import",
        description="Convert a kohya_ss GUI LoRA, DreamBooth, Fine-tuning, Textual Inversion or LECO config (JSON) into "
        "a run TOML for this trainer.",
    )
    parser.add_argument("config", help="the kohya_ss LoRA, DreamBooth, Fine-tuning, Textual Inversion or LECO config "
                        "(.json) to import")
    parser.add_argument("--toml", required=True, help="the run TOML to write (--config_file of the trainer)")
    args = parser.parse_args(argv)
    try:
        data = json.loads(Path(args.config).read_text(encoding="utf-8"))
        result = convert_kohya_config(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        print(msg(
            "gui.kohya.cli_unreadable", "error: cannot read {path} as JSON: {error}", path=args.config, error=str(error)
        ), file=sys.stderr)  # fmt: skip
        return 2
    except KohyaImportError as error:
        print(msg("gui.kohya.cli_refused", "error: {path}: {error}", path=args.config, error=str(error)), file=sys.stderr)
        return 2
    written = write_run_files(result, args.toml)
    files = ", ".join(map(str, written))
    print(msg(
        "gui.kohya.cli_wrote", "{command}, network type {network}: wrote {files}",
        command=result.command, network=result.network_type, files=files,
    ) if result.network_type else msg("gui.kohya.cli_wrote_command", "{command}: wrote {files}",
                                      command=result.command, files=files))  # fmt: skip
    # The headings in the language of the messages (KOHYA_LANGUAGE), as the GUI shows them.
    language = current_language()
    report = format_report(result, report_titles(Translator(language if language in available_languages() else "en")))
    if report:
        print(report)
    try:
        parse_args(result.command, ["--config_file", str(written[-1])])
    except OptionError as error:
        print(msg("gui.kohya.cli_toml_refused", "The trainer refuses this TOML as it is; fix it first:"), file=sys.stderr)
        for message in error.messages:
            print(f"  {message}", file=sys.stderr)
        return 1
    argv_run = build_command(result.command, written[-1], result.launch)
    command_line = format_cmd(argv_run) if os.name == "nt" else format_bash(argv_run)
    print(msg("gui.kohya.cli_train_with", "Train with (from {repo}):\n  {command}", repo=REPO, command=command_line))
    return 0

