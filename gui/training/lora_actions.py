"""What the training tabs' buttons do, on named values: start, preflight, print, export, import,
TensorBoard (the LoRA and fine-tune tabs alike; `TabValues.kind` tells them apart).

The tab (`gui/training/lora_tab.py`) turns widgets into a `TabValues` and shows the returned text; here
nothing knows about widgets. One `TrainingRunner` serves the whole GUI process (module level), so
a run outlives the browser tab that started it and every tab shows the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write
from backend.messages import LANGUAGE_ENV, msg
from backend.options import OptionError, options_for
from gui.backend_process import REPO, venv_python
from gui.form_text import text_problem
from gui.i18n import Translator
from gui.kohya_import.importer import (
    ImportResult,
    KohyaImportError,
    Unmapped,
    convert_kohya_config,
    format_report,
    report_titles,
)
from gui.markdown_text import Markdown, md_code_block, md_list, md_t
from gui.queue.queue_actions import queued_text
from gui.runs.forked_launch import forked_run
from gui.runs.progress_view import FAILURE_LOG_LINES, preflight_markdown
from gui.runs.run_history import HISTORY
from gui.runs.run_queue import QUEUE, RunQueue
from gui.runs.runner import RunnerBusyError, TrainingRunner
from gui.training.command_builder import (
    PreparedRun,
    build_command,
    plan_run,
    prepare_run,
    run_stem,
    write_run_config,
    write_run_files,
)
from gui.training.command_export import export_scripts, format_bash, format_cmd, language_env, script_texts
from gui.training.model_types import implied_option_names
from gui.training.network_types import compose, decompose
from gui.training.option_search import network_type_label
from gui.training.presets import USER_DIR, preset_data
from gui.training.tensorboard import SERVER as TENSORBOARD
from gui.training.tensorboard import TensorBoardError, TensorBoardServer
from gui.training.training_kinds import LORA, TrainingKind

RUNNER = TrainingRunner(history=HISTORY)  # every training run recorded (gui/runs/run_history.py)
PREFLIGHT_TIMEOUT_S = 300


@dataclass
class TabValues:
    """Everything the tab holds, by name."""

    options: dict[str, Any]  # option name -> value (set widgets only)
    model_type: str = ""  # "" = the kind's first model type (a new form's)
    network_type: str = "Standard"
    network_fields: dict[str, Any] = field(default_factory=dict)
    accelerate: dict[str, Any] = field(default_factory=dict)
    kind: TrainingKind = LORA

    def __post_init__(self) -> None:
        self.model_type = self.model_type or self.kind.default_model_type

    @property
    def command(self) -> str:
        return self.kind.command_for(self.model_type)

    def run_options(self) -> dict[str, Any]:
        """The trainer's options: model type and network selector folded in, other commands' options dropped."""
        accepted = options_for(self.command)
        values = {name: value for name, value in self.options.items() if name in accepted}
        # sd-scripts has no model type flag: the type is the values it implies (SD 2.x: v2).
        values.update(self.kind.model_type(self.model_type).distinguishing_options())
        if self.kind.networks:
            module, args = self.network()
            values.pop("network_args", None)
            values["network_module"] = module
            if args:
                values["network_args"] = args
        return values

    def network(self) -> tuple[str, list[str]]:
        """(`network_module`, `network_args`) the values stand for. Values read from the form hold the
        selector, its fields and the free-text rest in `network_args`; values loaded from a preset or
        an imported config name the module in `options` and hold the whole `network_args`."""
        if "network_module" in self.options:
            return str(self.options["network_module"] or "networks.lora"), list(self.options.get("network_args") or ())
        return compose(self.network_type, self.network_fields, self.options.get("network_args") or ())

    def preset_options(self) -> dict[str, Any]:
        """What a preset stores: the run's options without those the model type stands for (v2)."""
        values = self.run_options()
        for name in implied_option_names(self.kind.model_types):
            values.pop(name, None)
        return values

    def gui_keys(self) -> dict[str, Any]:
        keys: dict[str, Any] = {"model_type": self.model_type, "accelerate": dict(self.accelerate)}
        if self.kind.networks:
            keys["network_type"] = self.network_type
        return keys

    def form_data(self) -> dict[str, Any]:
        """The whole tab as a preset file holds it (kept with a run, restored on a page reload)."""
        return preset_data(self.preset_options(), self.gui_keys())


def problems_text(t: Translator, messages: list[str]) -> Markdown:
    """"Fix these options" over the problems (plain text, shown as written) as a list."""
    return Markdown(t.t("ui.fix_options") + "\n" + md_list(messages))


def _run_meta(tab: TabValues, prepared: PreparedRun) -> dict[str, Any]:
    """What a run keeps with it (History's record of it): its page, form, TOML and snapshot."""
    return {"kind": tab.kind.key, "form": tab.form_data(), "config": str(prepared.config_path),
            "snapshot": str(prepared.snapshot_path)}  # fmt: skip


def start(tab: TabValues, t: Translator, runner: TrainingRunner = RUNNER, when: float | None = None) -> str:
    """Start the run; `when` is the time its file names carry (the one Print command showed)."""
    if runner.running:
        return t.t("ui.already_running")
    try:
        prepared = prepare_run(tab.command, tab.run_options(), tab.accelerate, extra=tab.gui_keys(), when=when)
        # The trainer's messages (errors, hints, warnings) in the GUI's language.
        runner.start(prepared.argv, env={LANGUAGE_ENV: t.language}, meta=_run_meta(tab, prepared))
    except OptionError as error:
        return problems_text(t, error.messages)
    except (ValueError, OSError) as error:
        return problems_text(t, [str(error)])
    except RunnerBusyError:
        return t.t("ui.already_running")
    return md_t(t, "ui.started", path=prepared.config_path)


def add_to_queue(tab: TabValues, t: Translator, queue: RunQueue = QUEUE, when: float | None = None) -> str:
    """Queue the run (gui/runs/run_queue.py): checked and its TOML and snapshot written now, as Start does, so a
    bad form is refused here and the run is the form as it is now. `when`: as for `start`; a file of that name
    already written (another run queued in the same second) moves the time on rather than being replaced."""
    try:
        options = tab.run_options()
        when = time.time() if when is None else when
        while plan_run(tab.command, options, tab.accelerate, when=when).config_path.exists():
            when += 1
        prepared = prepare_run(tab.command, options, tab.accelerate, extra=tab.gui_keys(), when=when)
        name = str(options.get("output_name") or prepared.config_path.stem)
        item = queue.add("training", tab.kind.key, name, prepared.argv, env={LANGUAGE_ENV: t.language},
                         meta=_run_meta(tab, prepared))  # fmt: skip
    except OptionError as error:
        return problems_text(t, error.messages)
    except (ValueError, OSError) as error:
        return problems_text(t, [str(error)])
    return queued_text(queue, item.id, t, prepared.config_path)


def stop(t: Translator, runner: TrainingRunner = RUNNER) -> str:
    return t.t("ui.stopped_run") if runner.stop() else t.t("ui.nothing_to_stop")


def preflight(tab: TabValues, t: Translator) -> str:
    """Run the trainer's `--preflight` (no model is loaded) and show its report."""
    try:
        with tempfile.TemporaryDirectory(prefix="preflight-") as folder:
            config = write_run_config(tab.command, tab.run_options(), Path(folder) / "preflight.toml")
            argv = [venv_python(), "-m", f"backend.{tab.command}", "--config_file", str(config), "--preflight"]
            env = {**os.environ, LANGUAGE_ENV: t.language}  # its report in the UI language
            # Under the browser tests only (KOHYA_TEST_FORK_SOCKET): the same command, forked (gui/runs/forked_launch.py).
            result = forked_run(argv, env, REPO, PREFLIGHT_TIMEOUT_S) or subprocess.run(
                argv, cwd=REPO, capture_output=True, text=True, encoding="utf-8", errors="replace",
                timeout=PREFLIGHT_TIMEOUT_S, env=env,
            )  # fmt: skip
    except OptionError as error:
        return problems_text(t, error.messages)
    except subprocess.TimeoutExpired:
        return t.t("ui.preflight_timeout", seconds=PREFLIGHT_TIMEOUT_S)
    report = _json_report(result.stdout)
    if report is None:  # refused before the report (e.g. invalid options): show what it said
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-FAILURE_LOG_LINES:])
        return f"### {t.t('ui.status.failed', code=result.returncode)}\n{md_code_block(tail)}"
    return preflight_markdown(report, t)


def _json_report(stdout: str) -> dict[str, Any] | None:
    """The report object: the text from the first line that is exactly "{" (other lines may precede it)."""
    lines = stdout.splitlines()
    for index, line in enumerate(lines):
        if line == "{":
            try:
                report, _ = json.JSONDecoder().raw_decode("\n".join(lines[index:]))
            except ValueError:
                return None
            return report if isinstance(report, dict) else None
    return None


@dataclass
class CommandText:
    bash: str
    cmd: str
    toml: str
    message: str = ""


def print_command(tab: TabValues, t: Translator, when: float | None = None) -> CommandText:
    """The command Start would run and the TOML it would write, without writing anything; `when` is
    the time in the run's file names, so Start (given the same) writes the file named here."""
    try:
        with tempfile.TemporaryDirectory(prefix="command-") as folder:
            toml = write_run_config(tab.command, tab.run_options(), Path(folder) / "run.toml").read_text(encoding="utf-8")
        config = run_stem(tab.run_options(), when).with_suffix(".toml")
        argv = build_command(tab.command, config, tab.accelerate)
    except OptionError as error:
        return CommandText("", "", "", problems_text(t, error.messages))
    except ValueError as error:
        return CommandText("", "", "", problems_text(t, [str(error)]))
    env = language_env(t.language)  # outside the GUI too, the messages come in the language it was used in
    return CommandText(format_bash(argv, env), format_cmd(argv, env=env), toml, md_t(t, "ui.command_note", path=config))


def export(tab: TabValues, t: Translator, when: float | None = None) -> str:
    """Write the run's TOML and snapshot beside its outputs plus `.sh`/`.bat` scripts that start it
    (`when`: as for `print_command`)."""
    try:
        options = tab.run_options()
        prepared = plan_run(tab.command, options, tab.accelerate, when=when)
        # Every value checked, the scripts included, before any of the four files is written.
        env = language_env(t.language)
        script_texts(prepared.argv, prepared.config_path.stem, env=env)
        write_run_files(prepared, tab.command, options, tab.accelerate, extra=tab.gui_keys())
        sh, bat = export_scripts(prepared.argv, prepared.config_path.parent, prepared.config_path.stem, env=env)
    except OptionError as error:
        return problems_text(t, error.messages)
    except (ValueError, OSError) as error:
        return problems_text(t, [str(error)])
    return md_t(t, "ui.command_exported", path=f"{sh}, {bat}, {prepared.config_path}")



@dataclass
class KohyaImport:
    tab: TabValues | None  # None when nothing could be imported
    message: str


def import_kohya(path: str, t: Translator, prompts_dir: Path = USER_DIR, kind: TrainingKind = LORA) -> KohyaImport:
    """A kohya_ss GUI config (JSON) of the tab's kind (LoRA, DreamBooth) as the tab's values, with the import
    report as the message.

    Sample prompts (kohya_ss keeps their text in the config) go to `<prompts_dir>/<config>_prompts.txt`,
    never replacing a different file of that name.
    """
    path = path.strip().strip('"')
    if not path:
        return KohyaImport(None, t.t("ui.kohya_path_needed"))
    try:
        result = convert_kohya_config(json.loads(Path(path).read_text(encoding="utf-8")), kind.key)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return KohyaImport(None, md_t(t, "ui.kohya_unreadable", path=path, error=error))
    except KohyaImportError as error:
        return KohyaImport(None, md_t(t, "ui.kohya_refused", path=path, error=error))
    _leave_out_unshowable(result)
    # kohya_ss saves every field, so what the import leaves out takes the trainer's default (as it did
    # in sd-scripts), not the form's own starting value: the run is the command-line import's.
    options = {**_trainer_defaults(kind), **result.options}
    # The model type the import chose from the model file (FLUX.1 dev or schnell), else the one the command
    # and the options it implies say (sdxl_train_network: SDXL; v2: SD 2.x).
    model_type = result.model_type or kind.model_type_of(result.command, options)
    for name in implied_option_names(kind.model_types):  # the model type stands for them
        options.pop(name, None)
    if result.sample_prompts_text:
        options["sample_prompts"] = str(_write_prompts(result.sample_prompts_text, prompts_dir, Path(path).stem))
    if kind.networks:  # as the tab holds them: the network type's own arguments in its fields, the rest as network_args
        split = decompose(options.pop("network_module", None), options.pop("network_args", None), result.network_type)
        if split.extra:
            options["network_args"] = split.extra
        tab = TabValues(
            options=options, model_type=model_type, network_type=split.network_type, network_fields=split.fields,
            accelerate=dict(result.launch), kind=kind,
        )  # fmt: skip
        network = network_type_label(t, result.network_type)  # as the network type selector shows it
        lines = [md_t(t, "ui.kohya_imported", path=path, command=result.command, network=network)]
    else:
        tab = TabValues(options=options, model_type=model_type, accelerate=dict(result.launch), kind=kind)
        lines = [md_t(t, "ui.kohya_imported_kind", path=path, command=result.command)]
    report = format_report(result, report_titles(t))
    if report:
        lines.append(t.t("ui.kohya_report") + "\n" + md_code_block(report))
    return KohyaImport(tab, "\n\n".join(lines))


def _leave_out_unshowable(result: ImportResult) -> None:
    """Text a form field cannot show (a line break in a one-line field) is left out and reported like
    an invalid value, so the form shows what will run (gui/form_text.py)."""
    for table, prefix in ((result.options, ""), (result.launch, "accelerate: ")):
        for name, value in list(table.items()):
            if problem := text_problem(value):
                del table[name]
                detail = msg("gui.kohya.unshowable_left_out", "{problem}; left out", problem=problem)
                result.unmapped.append(Unmapped(f"{prefix}{name}", value, "invalid", detail))


def _trainer_defaults(kind: TrainingKind) -> dict[str, Any]:
    """The schema default of every option of the kind's commands (secrets and command-line-only ones aside)."""
    return {
        name: option.default
        for command in dict.fromkeys(kind.commands.values())
        for name, option in options_for(command).items()
        if not option.secret and not option.cli_only
    }


def _write_prompts(text: str, folder: Path, stem: str) -> Path:
    text = text.rstrip("\n") + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(1, 1000):
        target = folder / (f"{stem}_prompts.txt" if number == 1 else f"{stem}_prompts_{number}.txt")
        if not target.exists() or target.read_text(encoding="utf-8", errors="replace") == text:
            break
    with atomic_write(target) as file:
        file.write(text)
    return target


def open_tensorboard(tab: TabValues, t: Translator, server: TensorBoardServer = TENSORBOARD) -> str:
    """Start (or reuse) TensorBoard on the form's logging_dir and link to it."""
    logdir = tab.options.get("logging_dir")
    if not logdir:
        return t.t("ui.tensorboard_needs_logdir")
    try:
        info = server.open(str(logdir))
    except (TensorBoardError, OSError) as error:
        return md_t(t, "ui.tensorboard_failed", error=error)
    return md_t(t, "ui.tensorboard_open", url=info.url, path=info.logdir)
