"""What the History page does, on run ids: the table, a run's details, open its form in its page, run it again,
compare two runs. No widgets here (gui/history/history_page.py shows the results); no torch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from backend.messages import LANGUAGE_ENV
from gui.i18n import Translator
from gui.markdown_text import Markdown, md_code, md_code_block, md_t
from gui.runs.run_history import RunHistory
from gui.runs.runner import RunnerBusyError, TrainingRunner
from gui.training import form_state
from gui.training.training_kinds import (
    DREAMBOOTH,
    FINETUNE,
    LECO,
    LORA,
    TEXTUAL_INVERSION,
    VIDEO,
    TrainingKind,
)

KINDS: dict[str, TrainingKind] = {kind.key: kind for kind in (LORA, DREAMBOOTH, FINETUNE, TEXTUAL_INVERSION, LECO, VIDEO)}
LOG_TAIL = 40
STATUSES = ("running", "finished", "failed", "stopped", "interrupted")


def page_route(kind: str) -> str:
    """The page (gui/app.py route) of a training kind: the LoRA page is the main one ("")."""
    return "" if kind == LORA.key else kind


def status_label(run: Mapping[str, Any], t: Translator) -> str:
    status = run.get("status")
    if status == "failed":
        return t.t("ui.status.failed", code=run.get("exit_code"))
    return t.t(f"ui.status.{status}") if status in STATUSES else str(status)


def kind_label(kind: Any, t: Translator) -> str:
    return t.t(f"ui.tab.{kind}") if kind in KINDS else str(kind or "")


def _time(stamp: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if isinstance(stamp, (int, float)) else ""


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _loss(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else ""


def table_headers(t: Translator) -> list[str]:
    return [t.t(f"ui.history.col.{name}") for name in
            ("status", "page", "model", "method", "started", "duration", "final_loss", "output")]  # fmt: skip


def table_rows(runs: Sequence[Mapping[str, Any]], t: Translator) -> list[list[str]]:
    return [
        [status_label(run, t), kind_label(run.get("kind"), t), str(run.get("model") or ""), str(run.get("method") or ""),
         _time(run.get("started_at")), _duration(run.get("duration_s")), _loss(run.get("final_loss")),
         Path(str(run["output"])).name if run.get("output") else ""]
        for run in runs
    ]  # fmt: skip


def run_choice(run: Mapping[str, Any], t: Translator) -> tuple[str, str]:
    """(label, id) of a run in a selector: start time, page, output name, status."""
    name = run.get("output_name") or run.get("model") or ""
    label = f"{_time(run.get('started_at'))}  {kind_label(run.get('kind'), t)}  {name}  ({status_label(run, t)})"
    return label, str(run["id"])


def details_markdown(history: RunHistory, run_id: str, t: Translator) -> Markdown:
    record = history.record(run_id)
    if record is None:
        return Markdown(t.t("ui.history.no_run")) if run_id else Markdown("")
    rows = [
        (t.t("ui.history.col.status"), status_label(record, t)),
        (t.t("ui.history.col.page"), kind_label(record.get("kind"), t)),
        (t.t("ui.history.col.started"), _time(record.get("started_at"))),
        (t.t("ui.history.col.duration"), _duration(record.get("duration_s"))),
        (t.t("ui.history.col.final_loss"), _loss(record.get("final_loss"))),
        (t.t("ui.history.steps"), f"{record.get('steps') or ''} / {record.get('total') or ''}"),
        (t.t("ui.history.col.output"), md_code(record.get("output") or "")),
        (t.t("ui.history.folder"), md_code(history.run_folder(run_id) or "")),
    ]
    parts = ["\n".join(f"- **{name}**: {value}" for name, value in rows if value not in ("", " / "))]
    files = [*record.get("checkpoints", [])]
    if files:
        parts.append(f"**{t.t('ui.history.saved_files')}**\n" + "\n".join(f"- {md_code(path)}" for path in files))
    for error in record.get("errors") or []:
        parts.append(md_code_block(str(error)))
    return Markdown("\n\n".join(parts))


def command_line(history: RunHistory, run_id: str) -> str:
    return str((history.record(run_id) or {}).get("command_line") or "")


def log_tail(history: RunHistory, run_id: str, lines: int = LOG_TAIL) -> str:
    return "\n".join(history.text(run_id, "log.txt").splitlines()[-lines:])


def samples(history: RunHistory, run_id: str) -> list[str]:
    record = history.record(run_id) or {}
    return [path for path in record.get("samples", []) if Path(path).is_file()]


def loss_frame(history: RunHistory, run_ids: Sequence[tuple[str, str]], t: Translator) -> pd.DataFrame | None:
    """Long format for gr.LinePlot: each (series label, run id)'s loss curve; None when none has a point."""
    rows = [
        {"step": step, "loss": value, "series": label}
        for label, run_id in run_ids
        for step, value in history.loss_curve(run_id)
    ]
    if not rows:
        return None
    return pd.DataFrame(rows, columns=["step", "loss", "series"]).astype(
        {"step": "int64", "loss": "float64", "series": "string"}
    )


def _flat(form: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in form.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}.{inner}": item for inner, item in value.items()})
        else:
            flat[key] = value
    return flat


def option_diff(first: Mapping[str, Any], second: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(option, first's value, second's value) for each option that differs (None: not set), sorted by name."""
    a, b = _flat(first), _flat(second)
    return [(name, a.get(name), b.get(name)) for name in sorted(a.keys() | b.keys()) if a.get(name) != b.get(name)]


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


@dataclass
class Comparison:
    headers: list[str]
    rows: list[list[str]]
    plot: pd.DataFrame | None
    message: Markdown


def compare(history: RunHistory, first: str, second: str, t: Translator) -> Comparison:
    headers = [t.t("ui.history.option"), "A", "B"]
    if not first or not second or first == second:
        return Comparison(headers, [], None, Markdown(t.t("ui.history.pick_two")))
    forms = [history.form(first), history.form(second)]
    if forms[0] is None or forms[1] is None:
        return Comparison(headers, [], None, Markdown(t.t("ui.history.no_form")))
    rows = [[_label(name, t), _shown(a), _shown(b)] for name, a, b in option_diff(forms[0], forms[1])]
    plot = loss_frame(history, [("A", first), ("B", second)], t)
    key = "ui.history.differences" if rows else "ui.history.same_options"
    return Comparison(headers, rows, plot, md_t(t, key, count=len(rows)))


def _label(name: str, t: Translator) -> str:
    """An option's label with its flag (the form shows both); GUI keys as named."""
    label = t.option_label(name) if "." not in name else ""
    return f"{label} ({name})" if label and label != name else name


@dataclass
class Opened:
    route: str | None  # the page to go to; None: nothing was opened
    message: Markdown


def open_in_page(history: RunHistory, run_id: str, t: Translator) -> Opened:
    """Put the run's form where its page restores its form from (gui/training/form_state.py), to open that page."""
    record = history.record(run_id)
    if record is None:
        return Opened(None, Markdown(t.t("ui.history.pick_one")))
    kind = KINDS.get(str(record.get("kind")))
    form = history.form(run_id)
    if kind is None or form is None:
        return Opened(None, Markdown(t.t("ui.history.no_form")))
    if form_state.save_form(kind, form) is None:
        return Opened(None, md_t(t, "ui.history.open_failed", path=form_state.state_path(kind)))
    return Opened(page_route(kind.key), md_t(t, "ui.history.opened", page=kind_label(kind.key, t)))


def run_again(history: RunHistory, run_id: str, t: Translator, runner: TrainingRunner) -> Markdown:
    """Start the run's own TOML (the record's copy) with the same command, through the same runner."""
    record = history.record(run_id)
    folder = history.run_folder(run_id)
    if record is None or folder is None:
        return Markdown(t.t("ui.history.pick_one"))
    if runner.running:
        return Markdown(t.t("ui.already_running"))
    argv = [str(arg) for arg in record.get("argv") or []]
    config = folder / "config.toml"
    try:
        at = argv.index("--config_file") + 1
    except ValueError:
        at = 0
    if not at or at >= len(argv) or not config.is_file():
        return Markdown(t.t("ui.history.no_config"))
    argv[at] = str(config)
    meta = {"kind": record.get("kind"), "rerun_of": run_id, "config": str(config),
            "snapshot": str(folder / "snapshot.json")}  # fmt: skip
    form = history.form(run_id)
    if form is not None:
        meta["form"] = form
    env = {**{k: str(v) for k, v in (record.get("env") or {}).items()}, LANGUAGE_ENV: t.language}
    try:
        runner.start(argv, env=env, meta=meta)
    except RunnerBusyError:
        return Markdown(t.t("ui.already_running"))
    except OSError as error:
        return md_t(t, "ui.history.start_failed", error=error)
    return md_t(t, "ui.history.started_again", run=run_id)
