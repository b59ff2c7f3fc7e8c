"""The run queue (gui/runs/run_queue.py) and its worker (gui/runs/queue_worker.py): items kept in one JSON file
across GUI restarts, reordered, cancelled, paused; an item a dead GUI was running comes back "interrupted", never
run again by itself; a file of an older GUI loads, one with an item of an unknown kind is set aside; the worker runs
items one at a time through the right runner (training, tool, generate; fake commands), waits for a run started by
hand and for the other runners, and marks a cancelled run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gui.runs.queue_worker import QueueWorker
from gui.runs.run_history import RunHistory
from gui.runs.run_queue import RunQueue
from gui.runs.runner import TrainingRunner
from tests.gui.runs.test_runner import script, wait_for


def add(queue: RunQueue, name: str, argv: list[str] | None = None, kind: str = "training") -> str:
    return queue.add(
        kind, "lora", name, argv or ["true"], env={"KOHYA_LANGUAGE": "ja"}, meta={"kind": "lora"}
    ).id  # type: ignore[arg-type]


def names(queue: RunQueue) -> list[tuple[str, str]]:
    return [(item.name, item.status) for item in queue.items()]


def test_items_persist_in_order_and_move_cancel_pause_requeue(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "queue.json"
    queue = RunQueue(path)
    first, second, third = (add(queue, name) for name in ("a", "b", "c"))
    assert queue.move(third, -1) and not queue.move(first, -1)  # the first cannot go up
    assert queue.cancel_waiting(second) and not queue.cancel_waiting(second)
    queue.set_paused(True)
    # What a new GUI reads: the same items, order, statuses and pause.
    again = RunQueue(path)
    assert names(again) == [("a", "waiting"), ("c", "waiting"), ("b", "cancelled")]
    assert again.paused and again.item(first).env == {"KOHYA_LANGUAGE": "ja"}
    assert not again.move(third, 1)  # the last waiting one: "b" has ended, so nothing is below it
    assert again.requeue(second) and names(again)[-1] == ("b", "waiting")
    assert again.next_waiting().id == first
    assert again.clear_ended() == 0
    data = json.loads(path.read_text(encoding="utf-8"))
    assert (
        data["version"] == 1
        and data["paused"] is True
        and [item["name"] for item in data["items"]] == ["a", "c", "b"]
    )
    assert [p.name for p in path.parent.iterdir()] == [
        "queue.json"
    ]  # written atomically: no temporary file left


def test_a_failed_write_changes_nothing_and_a_broken_file_is_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "queue.json"
    queue = RunQueue(path)
    add(queue, "a")
    before = path.read_bytes()

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gui.runs.run_queue.atomic_write_json", full_disk)
    with pytest.raises(OSError):
        add(queue, "b")
    assert names(queue) == [("a", "waiting")] and path.read_bytes() == before
    monkeypatch.undo()

    path.write_text('{"items": [', encoding="utf-8")  # cut by a crash outside atomic writing
    broken = RunQueue(path)
    assert broken.items() == []
    assert len(list(tmp_path.glob("queue.json.broken-*"))) == 1


def test_an_older_file_loads_and_an_unknown_kind_is_a_bad_item(tmp_path: Path) -> None:
    path = tmp_path / "queue.json"
    old = {"version": 1, "paused": False, "items": [  # as the GUI wrote it before generate items
        {"id": "a1", "kind": "training", "page": "lora", "name": "x", "argv": ["true"], "env": {}, "meta": {},
         "status": "finished", "added_at": 1.0},
        {"id": "b2", "kind": "tool", "page": "resize_lora", "name": "y", "argv": ["true"], "status": "waiting"},
    ]}  # fmt: skip
    path.write_text(json.dumps(old), encoding="utf-8")
    assert names(RunQueue(path)) == [("x", "finished"), ("y", "waiting")]
    # A newer GUI's kind: no runner here would start it, so the file is set aside as a bad item's file is.
    old["items"].append({"id": "c3", "kind": "upscale", "page": "?", "name": "z", "argv": ["true"]})
    path.write_text(json.dumps(old), encoding="utf-8")
    assert RunQueue(path).items() == [] and len(list(tmp_path.glob("queue.json.broken-*"))) == 1
    with pytest.raises(ValueError, match="upscale"):
        RunQueue(path).add("upscale", "?", "z", ["true"])  # type: ignore[arg-type]


def test_an_item_running_when_its_gui_died_is_interrupted_not_rerun(tmp_path: Path, runners: tuple) -> None:
    path = tmp_path / "queue.json"
    queue = RunQueue(path)
    running, waiting = add(queue, "a"), add(queue, "b")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    # The killed GUI's run still goes (its own process group outlives the GUI).
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        queue.update(running, status="running", gui_pid=int(dead.stdout), pid=orphan.pid)
        after_restart = RunQueue(path)
        worker = QueueWorker(after_restart, *runners)
        assert names(after_restart) == [("a", "interrupted"), ("b", "waiting")]
        assert json.loads(path.read_text(encoding="utf-8"))["items"][0]["status"] == "interrupted"
        assert worker.busy() and worker.run_next() is None  # the orphan has the GPU: nothing starts beside it
    finally:
        orphan.kill()
        orphan.wait()
    assert not worker.busy() and after_restart.next_waiting().id == waiting


@pytest.fixture
def runners() -> tuple[TrainingRunner, TrainingRunner, TrainingRunner]:
    """The training, tool and Generate page's runners."""
    return TrainingRunner(stop_timeout=5), TrainingRunner(stop_timeout=5), TrainingRunner(stop_timeout=5)


def test_the_worker_runs_items_one_at_a_time_through_their_runner(tmp_path: Path, runners: tuple) -> None:
    training, tool, generation = runners
    training.history = RunHistory(tmp_path / "runs")
    queue = RunQueue(tmp_path / "runs" / "queue.json")
    worker = QueueWorker(queue, training, tool, generation)
    ok = add(queue, "ok", script(tmp_path, "print(os.environ['KOHYA_LANGUAGE'])\n"))
    bad = add(queue, "bad", script(tmp_path, "sys.exit(3)\n"))
    tooled = add(queue, "tool", script(tmp_path, "print('tool ran')\n"), kind="tool")
    grid = queue.add("generate", "generate", "grid", script(tmp_path, "print('generated')\n"),
                     env={"KOHYA_LANGUAGE": "ja"}, meta={"kind": "generate"}).id  # fmt: skip
    queue.set_paused(True)
    assert worker.run_next() is None  # paused: nothing starts
    queue.set_paused(False)

    # A run started by hand (a tool, a generation) goes first: the queue waits for it.
    tool.start(script(tmp_path, "time.sleep(0.5)\n"))
    assert worker.run_next() is None and queue.item(ok).status == "waiting"
    tool.wait(10)
    generation.start(script(tmp_path, "time.sleep(0.5)\n"))
    assert worker.run_next() is None and queue.item(ok).status == "waiting"
    generation.wait(10)

    assert worker.run_next().status == "finished"
    assert training.log_text() == "ja" and training.meta()["queue_item"] == ok
    assert queue.item(ok).pid == training.snapshot()["pid"]
    (record,) = training.history.runs()
    assert record["status"] == "finished"  # History records a queued run, marked so
    assert training.history.record(record["id"])["queue_item"] == ok
    ended = worker.run_next()
    assert (ended.id, ended.status, ended.exit_code) == (bad, "failed", 3)
    assert worker.run_next().id == tooled and tool.log_text() == "tool ran" and not training.running
    # The generate item waits while a training runs, then goes through the Generate page's runner (its page
    # shows the run), not the tool's.
    training.start(script(tmp_path, "time.sleep(0.5)\n"))
    assert worker.run_next() is None and queue.item(grid).status == "waiting"
    training.wait(10)
    assert worker.run_next().id == grid and queue.item(grid).status == "finished"
    assert generation.log_text() == "generated" and tool.log_text() == "tool ran"
    assert generation.meta() == {"kind": "generate", "queue_item": grid}
    assert queue.requeue(grid) and worker.run_next().status == "finished"  # "Queue again": it runs again
    gone = queue.add("training", "lora", "gone", ["true"], meta={"config": str(tmp_path / "deleted.toml")}).id
    ended = worker.run_next()  # its TOML (written when queued) was deleted since: refused, with the reason
    assert (
        (ended.id, ended.status) == (gone, "failed")
        and "deleted.toml" in ended.error
        and not training.running
    )
    assert worker.run_next() is None
    assert names(queue) == [("ok", "finished"), ("bad", "failed"), ("tool", "finished"), ("grid", "finished"),
                            ("gone", "failed")]  # fmt: skip


def test_cancel_stops_the_running_item_and_the_thread_goes_on(tmp_path: Path, runners: tuple) -> None:
    queue = RunQueue(tmp_path / "queue.json")
    worker = QueueWorker(queue, *runners)
    training = runners[0]
    long = add(queue, "long", script(tmp_path, "print('going', flush=True)\ntime.sleep(60)\n"))
    after = add(queue, "after", script(tmp_path, "print('next')\n"))
    worker.start()
    wait_for(training, lambda snapshot: snapshot["log_tail"] == ["going"])
    assert queue.item(long).status == "running" and worker.busy()
    assert worker.cancel(after) == "cancelled"  # a waiting one: never starts
    assert worker.cancel(long) == "stopped"
    queue.requeue(after)
    wait_for(training, lambda snapshot: snapshot["log_tail"] == ["next"] and snapshot["status"] == "finished")
    wait_for(training, lambda snapshot: queue.item(after).status == "finished")
    assert queue.item(long).status == "cancelled"
