"""Run records: every training run the GUI starts keeps a folder of its own, listed in one index.

    <history dir>/
        index.json                 {"version": 1, "runs": {<id>: summary}}; rewritten atomically
        <id>/                      <YYYYMMDD-HHMMSS>-<kind>[-n]
            run.json               the record: status, times, argv, command line, model, method, final loss,
                                   samples', checkpoints' and output's paths (linked, never copied)
            config.toml            a copy of the run's TOML (what "Run again" starts)
            form.json              the form snapshot (preset format: what "Open in its page" restores)
            snapshot.json          a copy of the JSON snapshot Start wrote beside the TOML
            command.txt            the exact command line
            log.txt                the log as the page shows it (progress lines and redrawn bars left out)
            progress.jsonl         the @@progress events (docs/progress-protocol.md), one JSON object a line

The runner writes it (`TrainingRunner(history=...)`, gui/runs/runner.py), so every page's runs (and, later, a
queue's: whatever starts through a runner with a history) are recorded in one place. A record that still says
"running" when a GUI starts (the GUI that ran it died) is marked "interrupted". Writing a record never stops a
run: a history that cannot be written is reported on the console and the run goes on. Torch- and gradio-free.

Where: `--history_dir` (or `history_dir` in the GUI config's [launch]), else `$KOHYA_GUI_HISTORY_DIR`, else
`runs/` in the GUI's state folder (`user_state/`, git-ignored; `$KOHYA_GUI_STATE_DIR`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

from backend.atomic import atomic_write, atomic_write_json
from backend.training.progress import PREFIX, parse_progress_line
from gui.backend_process import REPO

HISTORY_DIR_ENV = "KOHYA_GUI_HISTORY_DIR"
STATE_DIR_ENV = "KOHYA_GUI_STATE_DIR"  # as gui/training/form_state.py
INDEX_VERSION = 1
FINAL = ("finished", "failed", "stopped", "interrupted")
# What the index keeps of each record (the History table and its search).
SUMMARY_KEYS = ("id", "status", "kind", "command", "model", "method", "output_name", "started_at", "ended_at",
                "duration_s", "final_loss", "output", "exit_code", "rerun_of")  # fmt: skip

_configured: Path | None = None


def configure(folder: str | os.PathLike[str] | None) -> None:
    """The history folder chosen at launch (`--history_dir`); None: the default."""
    global _configured
    _configured = Path(folder).expanduser() if folder else None


def history_dir() -> Path:
    if _configured is not None:
        return _configured
    if os.environ.get(HISTORY_DIR_ENV):
        return Path(os.environ[HISTORY_DIR_ENV])
    return Path(os.environ.get(STATE_DIR_ENV) or REPO / "user_state") / "runs"


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, OSError):
        return False


def _model_name(form: Mapping[str, Any]) -> str:
    model = str(form.get("pretrained_model_name_or_path") or form.get("pretrained_model_name") or "")
    return Path(model.rstrip("/\\")).name if model else ""


def _method(kind: str, form: Mapping[str, Any]) -> str:
    """What trains: the network type (LoRA page), else the network module or the kind's own training type."""
    for key in ("network_type", "training_type"):
        if form.get(key):
            return str(form[key])
    module = form.get("network_module")
    return str(module) if module else ""


def _config_of(argv: Sequence[str]) -> str | None:
    for index, arg in enumerate(argv[:-1]):
        if arg == "--config_file":
            return argv[index + 1]
    return None


class RunRecord:
    """One run's folder, written as the run goes (the runner's reader and waiter threads)."""

    def __init__(self, history: RunHistory, folder: Path, data: dict[str, Any]) -> None:
        self.history = history
        self.folder = folder
        self.data = data
        self._log: IO[str] = open(folder / "log.txt", "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        self._progress: IO[str] = open(folder / "progress.jsonl", "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        self._pending: str | None = None  # a line ending in a bare \r: replaced by the next, as on the page

    @property
    def id(self) -> str:
        return self.data["id"]

    def add_output(self, raw: str) -> None:
        """One line as the runner read it (see RunState.add_output): progress events to progress.jsonl, the
        rest to the log. Never raises: a full disk must not end the run's reader."""
        try:
            line = raw.rstrip("\r\n")
            event = parse_progress_line(line)
            if event is not None:
                self._progress.write(json.dumps(event, ensure_ascii=False) + "\n")
                self._progress.flush()
                line = line[: line.find(PREFIX)].rstrip()
                if not line:
                    return
            if raw.endswith("\r") and not raw.endswith("\n"):
                self._pending = line
                return
            self._pending = None
            self._log.write(line + "\n")
            self._log.flush()
        except (OSError, ValueError):
            pass

    def finish(self, state: Mapping[str, Any]) -> None:
        """The run is final: `state` is `RunState.to_dict()`."""
        try:
            if self._pending:
                self._log.write(self._pending + "\n")
            self._log.close()
            self._progress.close()
        except (OSError, ValueError):
            pass
        started, ended = state.get("started_at"), state.get("ended_at")
        loss = state.get("avr_loss") if state.get("avr_loss") is not None else state.get("loss")
        self.data.update(
            status=state.get("status"),
            ended_at=ended,
            duration_s=round(ended - started, 1) if started and ended else None,
            exit_code=state.get("exit_code"),
            final_loss=loss,
            steps=state.get("step"),
            total=state.get("total"),
            output=state.get("output"),
            end_reason=state.get("end_reason"),
            samples=[s["path"] for s in state.get("samples", []) if s.get("path")],
            checkpoints=[c["path"] for c in state.get("checkpoints", []) if c.get("path")],
            errors=[e.get("message") for e in state.get("errors", []) if e.get("message")],
        )
        self.history.save(self.folder, self.data)


class RunHistory:
    """The history folder: records and their index. `folder` None: `history_dir()` at each use."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self._folder = Path(folder) if folder is not None else None
        self._lock = threading.Lock()
        self._recovered: set[Path] = set()
        self._forms: dict[tuple[Path, str], str] = {}  # searchable text of final runs' forms

    @property
    def folder(self) -> Path:
        return self._folder if self._folder is not None else history_dir()

    # ---- writing ---------------------------------------------------------------------------------

    def begin(
        self, argv: Sequence[str], meta: Mapping[str, Any], started_at: float | None = None, pid: int | None = None
    ) -> RunRecord:
        """A new record for a run that just started (OSError when the folder cannot be written)."""
        root = self.folder
        self._recover(root)
        started_at = time.time() if started_at is None else started_at
        kind = str(meta.get("kind") or "run")
        form = meta.get("form") if isinstance(meta.get("form"), Mapping) else {}
        stem = time.strftime("%Y%m%d-%H%M%S", time.localtime(started_at)) + f"-{kind}"
        root.mkdir(parents=True, exist_ok=True)
        for number in range(1, 10_000):
            folder = root / (stem if number == 1 else f"{stem}-{number}")
            try:
                folder.mkdir()
                break
            except FileExistsError:
                continue
        config = meta.get("config") or _config_of(argv)
        command_line = shlex.join(str(arg) for arg in argv)
        with atomic_write(folder / "command.txt") as file:
            file.write(command_line + "\n")
        if form:
            atomic_write_json(dict(form), folder / "form.json")
        for source, name in ((config, "config.toml"), (meta.get("snapshot"), "snapshot.json")):
            if source and Path(source).is_file():
                shutil.copyfile(source, folder / name)
        data: dict[str, Any] = {
            "id": folder.name,
            "status": "running",
            "kind": kind,
            "command": (form or {}).get("command") or _command_name(argv),
            "model": _model_name(form or {}),
            "method": _method(kind, form or {}),
            "output_name": str((form or {}).get("output_name") or ""),
            "started_at": started_at,
            "ended_at": None,
            "duration_s": None,
            "final_loss": None,
            "output": None,
            "exit_code": None,
            "rerun_of": meta.get("rerun_of"),
            "queue_item": meta.get("queue_item"),  # started by the run queue (gui/runs/queue_worker.py)
            "argv": [str(arg) for arg in argv],
            "command_line": command_line,
            "config": str(config) if config else None,
            "env": dict(meta.get("env") or {}),
            "pid": pid,
            "gui_pid": os.getpid(),
        }
        self.save(folder, data)
        return RunRecord(self, folder, data)

    def save(self, folder: Path, data: Mapping[str, Any]) -> None:
        """Write a record's run.json and its line of the index (both atomically)."""
        atomic_write_json(dict(data), folder / "run.json")
        with self._lock:
            index = self._read_index(folder.parent)
            index[data["id"]] = {key: data.get(key) for key in SUMMARY_KEYS}
            self._write_index(folder.parent, index)

    # ---- reading ---------------------------------------------------------------------------------

    def runs(self) -> list[dict[str, Any]]:
        """Every run's summary, newest first (a GUI that died while running one: "interrupted")."""
        root = self.folder
        self._recover(root)
        with self._lock:
            index = self._read_index(root)
        return sorted(index.values(), key=lambda run: (run.get("started_at") or 0, run["id"]), reverse=True)

    def record(self, run_id: str) -> dict[str, Any] | None:
        """The whole run.json of `run_id`, None when there is none."""
        folder = self.run_folder(run_id)
        if folder is None:
            return None
        try:
            data = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def run_folder(self, run_id: str) -> Path | None:
        # Only an id of this folder: never a path the caller made up.
        if not run_id or run_id != Path(run_id).name or run_id.startswith("."):
            return None
        folder = self.folder / run_id
        return folder if folder.is_dir() else None

    def form(self, run_id: str) -> dict[str, Any] | None:
        folder = self.run_folder(run_id)
        try:
            data = json.loads((folder / "form.json").read_text(encoding="utf-8")) if folder else None
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def text(self, run_id: str, name: str) -> str:
        folder = self.run_folder(run_id)
        try:
            return (folder / name).read_text(encoding="utf-8", errors="replace") if folder else ""
        except OSError:
            return ""

    def events(self, run_id: str) -> list[dict[str, Any]]:
        events = []
        for line in self.text(run_id, "progress.jsonl").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash
            if isinstance(event, dict):
                events.append(event)
        return events

    def loss_curve(self, run_id: str) -> list[tuple[int, float]]:
        """(step, average loss, else loss) of each step event."""
        points = []
        for event in self.events(run_id):
            if event.get("event") != "step" or not isinstance(event.get("step"), int):
                continue
            value = event.get("avr_loss") if event.get("avr_loss") is not None else event.get("loss")
            if isinstance(value, (int, float)):
                points.append((event["step"], float(value)))
        return points

    def search(self, query: str, runs: Iterable[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The runs whose every word (case-insensitive) is in their summary, command line or form values."""
        words = query.casefold().split()
        listed = [dict(run) for run in (self.runs() if runs is None else runs)]
        if not words:
            return listed
        return [run for run in listed if all(word in self._search_text(run) for word in words)]

    def _search_text(self, run: Mapping[str, Any]) -> str:
        key = (self.folder, str(run["id"]))
        if key in self._forms:
            return self._forms[key]
        form = self.form(str(run["id"])) or {}
        parts = [str(value) for value in run.values() if value is not None]
        parts += [f"{name} {value}" for name, value in form.items()]
        parts.append(self.text(str(run["id"]), "command.txt"))
        text = "\n".join(parts).casefold()
        if run.get("status") in FINAL:
            self._forms[key] = text
        return text

    # ---- the index -------------------------------------------------------------------------------

    def _recover(self, root: Path) -> None:
        """Once per folder and process: records left "running" by a GUI that is gone become "interrupted"."""
        if root in self._recovered:
            return
        self._recovered.add(root)
        with self._lock:
            index = self._read_index(root)
            changed = False
            for run_id, summary in index.items():
                if summary.get("status") != "running":
                    continue
                try:
                    record = json.loads((root / run_id / "run.json").read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    record = None
                record = record if isinstance(record, dict) else None
                gui_pid = (record or {}).get("gui_pid")
                if gui_pid != os.getpid() and not pid_alive(gui_pid):
                    summary["status"] = "interrupted"
                    changed = True
                    if record is not None:
                        record["status"] = "interrupted"
                        with contextlib.suppress(OSError):
                            atomic_write_json(record, root / run_id / "run.json")
            if changed:
                self._write_index(root, index)

    def _read_index(self, root: Path) -> dict[str, dict[str, Any]]:
        """The index; rebuilt from the records' run.json when it is missing or unreadable."""
        try:
            data = json.loads((root / "index.json").read_text(encoding="utf-8"))
            runs = data["runs"]
            if isinstance(runs, dict):
                return {str(key): dict(value) for key, value in runs.items() if isinstance(value, dict)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError):
            print(f"run history: {root / 'index.json'} unreadable; rebuilt from the run records", file=sys.stderr)
        index: dict[str, dict[str, Any]] = {}
        for path in sorted(root.glob("*/run.json")) if root.is_dir() else ():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("id") == path.parent.name:
                index[data["id"]] = {key: data.get(key) for key in SUMMARY_KEYS}
        return index

    def _write_index(self, root: Path, index: Mapping[str, Any]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_json({"version": INDEX_VERSION, "runs": dict(index)}, root / "index.json")


def _command_name(argv: Sequence[str]) -> str:
    for index, arg in enumerate(argv[:-1]):
        if arg == "-m" and argv[index + 1].startswith("backend."):
            return argv[index + 1].removeprefix("backend.")
    return ""


HISTORY = RunHistory()
