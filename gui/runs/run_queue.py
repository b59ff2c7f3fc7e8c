"""The run queue: training runs, tool runs and generations waiting their turn, kept in one JSON file that survives
the GUI.

Decisions (the non-obvious ones):
- Where: `queue.json` inside the run history folder (`--history_dir`, `$KOHYA_GUI_HISTORY_DIR`, else
  `user_state/runs`; gui/runs/run_history.py), so one setting moves a user's runs and their queue together;
  `$KOHYA_GUI_QUEUE_FILE` names another file. The history index only reads `*/run.json`, so the file is no record.
- What an item holds: everything needed to start it later, nothing read from a form at start time. A training
  item is prepared when it is queued, exactly as Start prepares a run (checked, its TOML and snapshot written
  beside the outputs: gui/training/lora_actions.py `add_to_queue`); the item keeps that argv, env and meta (kind,
  form, config, snapshot). So a bad form is refused when queued, and the run is the form as it was then, whatever
  the page shows later. A tool item keeps the tool's argv and env; a generate item the Generate page's argv,
  checked as its Run checks it (gui/generate/generate_page.py).
- Kinds: `ITEM_KINDS`, one runner each (gui/runs/queue_worker.py). An item of another kind (a newer GUI's file)
  is a bad item like one missing a field: the file is set aside as unreadable (below), never half run.
- Statuses: waiting -> running -> finished | failed | stopped | cancelled | interrupted. Ended items stay listed
  (the History page has the details) until "Clear ended"; the oldest beyond `KEEP_ENDED` are dropped.
- A GUI that dies during an item: the next GUI to load the file finds it "running" with its GUI process gone and
  marks it "interrupted" (as History marks the record). It is never started again by itself (it may have written
  half its outputs, or crashed the machine); "Queue again" puts it back at the end. A killed GUI (SIGKILL, SIGTERM)
  can leave its run going: while that process (`pid`) lives, the next GUI starts nothing (the GPU is taken).
- A GUI closed normally (Ctrl+C) stops its run (gui/runs/runner.py); the item is "interrupted" too, not "stopped":
  the user did not stop it (gui/runs/queue_worker.py).
- One GUI per queue file: a second GUI on the same state folder would run the same waiting items.
- Every change rewrites the whole file atomically (backend/atomic.py); an unreadable file is set aside as
  `queue.json.broken-<time>` (reported on the console) and the queue starts empty, rather than being overwritten.

Torch- and gradio-free.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from backend.atomic import atomic_write_json
from gui.runs.run_history import history_dir, pid_alive

QUEUE_FILE_ENV = "KOHYA_GUI_QUEUE_FILE"
QUEUE_VERSION = 1
KEEP_ENDED = 100
ENDED = ("finished", "failed", "stopped", "cancelled", "interrupted")
ItemKind = Literal["training", "tool", "generate"]
ITEM_KINDS: tuple[str, ...] = get_args(ItemKind)


def queue_file() -> Path:
    if os.environ.get(QUEUE_FILE_ENV):
        return Path(os.environ[QUEUE_FILE_ENV])
    return history_dir() / "queue.json"


@dataclass
class QueueItem:
    id: str
    kind: ItemKind  # which runner starts it
    page: str  # a training kind's key ("lora", ...), the tool's name, or "generate"
    name: str  # what the list shows: the output name, the tool's output, a generation's folder and prompt
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    status: str = "waiting"
    added_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    gui_pid: int | None = None  # the GUI process that started it (a dead one: "interrupted")
    pid: int | None = None  # the run's process (it may outlive a GUI that was killed)
    cancel_requested: bool = False
    error: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ITEM_KINDS:  # no runner would start it
            raise ValueError(f"unknown queue item kind {self.kind!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueueItem:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


class RunQueue:
    """The queue file and its items, in order. Thread-safe; every change is written at once."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        """`path` None: `queue_file()`, read when first used (after the launch flags set the history folder)."""
        self._path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self._items: list[QueueItem] | None = None
        self._paused = False
        self._listeners: list[Any] = []
        self._orphans: set[int] = set()  # runs of interrupted items still going (a killed GUI left them)

    @property
    def path(self) -> Path:
        return self._path if self._path is not None else queue_file()

    def on_change(self, listener: Any) -> None:
        """`listener()` is called after every change (the worker wakes up on it)."""
        self._listeners.append(listener)

    # ---- reading ---------------------------------------------------------------------------------

    def items(self) -> list[QueueItem]:
        with self._lock:
            return [QueueItem.from_dict(asdict(item)) for item in self._loaded()]

    def item(self, item_id: str) -> QueueItem | None:
        with self._lock:
            found = self._find(item_id)
            return QueueItem.from_dict(asdict(found)) if found else None

    @property
    def paused(self) -> bool:
        with self._lock:
            self._loaded()
            return self._paused

    def counts(self) -> dict[str, int]:
        """Items by status (only the statuses present)."""
        counts: dict[str, int] = {}
        for item in self.items():
            counts[item.status] = counts.get(item.status, 0) + 1
        return counts

    def orphan_running(self) -> bool:
        """Whether a run that a killed GUI left behind still goes (it has the GPU: the queue waits for it)."""
        with self._lock:
            self._loaded()
            self._orphans = {pid for pid in self._orphans if pid_alive(pid)}
            return bool(self._orphans)

    def next_waiting(self) -> QueueItem | None:
        with self._lock:
            for item in self._loaded():
                if item.status == "waiting":
                    return QueueItem.from_dict(asdict(item))
        return None

    # ---- changing --------------------------------------------------------------------------------

    def add(
        self, kind: ItemKind, page: str, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> QueueItem:  # fmt: skip
        """A new waiting item at the end (OSError when the file cannot be written: nothing is added)."""
        item = QueueItem(id=uuid.uuid4().hex[:12], kind=kind, page=page, name=name, argv=[str(a) for a in argv],
                         env={k: str(v) for k, v in (env or {}).items()}, meta=dict(meta or {}),
                         added_at=time.time())  # fmt: skip
        with self._lock:
            items = self._loaded()
            self._save([*items, item], self._paused)
        self._changed()
        return item

    def move(self, item_id: str, offset: int) -> bool:
        """Move a waiting item `offset` places among the waiting ones (-1: up); False when it cannot move."""
        with self._lock:
            items = list(self._loaded())
            waiting = [index for index, item in enumerate(items) if item.status == "waiting"]
            at = next((n for n, index in enumerate(waiting) if items[index].id == item_id), None)
            if at is None or not 0 <= at + offset < len(waiting):
                return False
            first, second = waiting[at], waiting[at + offset]
            items[first], items[second] = items[second], items[first]
            self._save(items, self._paused)
        self._changed()
        return True

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self._save(self._loaded(), paused)
        self._changed()

    def update(self, item_id: str, **changes: Any) -> QueueItem | None:
        """Set fields of an item (the worker's status changes); None when it is gone."""
        with self._lock:
            items = [QueueItem.from_dict(asdict(item)) for item in self._loaded()]
            found = next((item for item in items if item.id == item_id), None)
            if found is None:
                return None
            for name, value in changes.items():
                setattr(found, name, value)
            self._save(items, self._paused)
        self._changed()
        return QueueItem.from_dict(asdict(found))

    def cancel_waiting(self, item_id: str) -> bool:
        """A waiting item becomes "cancelled" (it stays listed); False when it is not waiting."""
        with self._lock:
            found = self._find(item_id)
            if found is None or found.status != "waiting":
                return False
            self.update(item_id, status="cancelled", ended_at=time.time())
        return True

    def requeue(self, item_id: str) -> bool:
        """An ended item waits again, at the end of the queue; False when it has not ended."""
        with self._lock:
            items = list(self._loaded())
            found = self._find(item_id)
            if found is None or found.status not in ENDED:
                return False
            again = QueueItem.from_dict({**asdict(found), "status": "waiting", "started_at": None, "ended_at": None,
                                         "exit_code": None, "gui_pid": None, "pid": None, "cancel_requested": False,
                                         "error": ""})  # fmt: skip
            self._save([item for item in items if item.id != item_id] + [again], self._paused)
        self._changed()
        return True

    def clear_ended(self) -> int:
        """Drop every ended item from the list; returns how many."""
        with self._lock:
            items = self._loaded()
            kept = [item for item in items if item.status not in ENDED]
            if len(kept) != len(items):
                self._save(kept, self._paused)
        self._changed()
        return len(items) - len(kept)

    # ---- the file --------------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the file again at the next use (a restarted GUI; tests)."""
        with self._lock:
            self._items = None

    def _find(self, item_id: str) -> QueueItem | None:
        return next((item for item in self._loaded() if item.id == item_id), None)

    def _loaded(self) -> list[QueueItem]:
        if self._items is None:
            self._items, self._paused = self._read()
            self._recover()
        return self._items

    def _read(self) -> tuple[list[QueueItem], bool]:
        path = self.path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            items = [QueueItem.from_dict(item) for item in data["items"]]
            return items, bool(data.get("paused"))
        except FileNotFoundError:
            return [], False
        except (OSError, ValueError, KeyError, TypeError) as error:
            broken = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                path.replace(broken)
                kept = f"; set aside as {broken}"
            except OSError:
                kept = ""
            print(f"run queue: {path} unreadable ({error}){kept}; the queue starts empty", file=sys.stderr)
            return [], False

    def _recover(self) -> None:
        """Items left "running" by a GUI that is gone become "interrupted" (never started again by themselves)."""
        assert self._items is not None
        changed = False
        for item in self._items:
            if item.status == "running" and item.gui_pid != os.getpid() and not pid_alive(item.gui_pid):
                item.status, item.ended_at, changed = "interrupted", item.ended_at or time.time(), True
                if pid_alive(item.pid):
                    self._orphans.add(int(item.pid))  # type: ignore[arg-type]
        if changed:
            try:
                self._save(self._items, self._paused)
            except OSError as error:
                print(f"run queue: cannot write {self.path}: {error}", file=sys.stderr)

    def _save(self, items: list[QueueItem], paused: bool) -> None:
        """Write the file, then take it as the state (a failed write changes nothing)."""
        ended = [index for index, item in enumerate(items) if item.status in ENDED]
        dropped = set(ended[: max(0, len(ended) - KEEP_ENDED)])
        items = [item for index, item in enumerate(items) if index not in dropped]
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            {"version": QUEUE_VERSION, "paused": paused, "items": [asdict(item) for item in items]}, path
        )
        self._items, self._paused = items, paused

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()


QUEUE = RunQueue()
