"""Queueing from a training page and a tool form (no browser): the checks Start and Run make refuse a bad form
before anything is queued; a good one is prepared now (its TOML written, even for two runs queued in the same
second); the Queue page's table and the header line say what runs and waits, in both languages; a generation is
listed under the Generate page."""

from __future__ import annotations

import html
import time
from pathlib import Path

from gui.i18n import Translator
from gui.queue import queue_actions as actions
from gui.runs.run_queue import RunQueue
from gui.tools.tool_form import ToolArg, ToolSpec, queue_tool
from gui.training import lora_actions
from gui.training.lora_actions import TabValues

EN, JA = Translator("en"), Translator("ja")


def test_a_training_run_is_checked_and_prepared_when_queued(tmp_path: Path) -> None:
    queue = RunQueue(tmp_path / "queue.json")
    refused = lora_actions.add_to_queue(TabValues(options={"output_dir": str(tmp_path / "out")}), EN, queue)
    assert "pretrained_model_name_or_path" in refused and queue.items() == []
    tab = TabValues(options={"pretrained_model_name_or_path": str(tmp_path / "m.safetensors"),
                             "output_dir": str(tmp_path / "out"), "output_name": "x"})  # fmt: skip
    when = time.time()
    first = lora_actions.add_to_queue(tab, JA, queue, when=when)
    lora_actions.add_to_queue(tab, JA, queue, when=when)  # the same second: its own files, not the first's
    one, two = queue.items()
    assert one.meta["config"] != two.meta["config"]
    assert all(
        Path(item.meta["config"]).is_file() and Path(item.meta["snapshot"]).is_file() for item in (one, two)
    )
    assert one.argv[one.argv.index("--config_file") + 1] == one.meta["config"]
    assert (one.kind, one.page, one.name, one.env) == ("training", "lora", "x", {"KOHYA_LANGUAGE": "ja"})
    assert one.meta["form"]["output_name"] == "x" and one.meta["kind"] == "lora"
    assert JA.t("ui.queue.added", position=1, waiting=2, what="")[:10] in first


def test_a_tool_run_is_checked_when_queued(tmp_path: Path) -> None:
    queue = RunQueue(tmp_path / "queue.json")
    spec = ToolSpec("demo", (ToolArg("model", "file", required=True), ToolArg("save_to", "save")))
    assert "model" in queue_tool(spec, {"model": ""}, EN, queue) and queue.items() == []
    queue.set_paused(True)
    message = queue_tool(spec, {"model": "/m/a.safetensors", "save_to": "/m/b.safetensors"}, EN, queue)
    (item,) = queue.items()
    assert (item.kind, item.page, item.name) == ("tool", "demo", "b.safetensors")
    assert item.argv[1:] == [
        "-m",
        "backend.tools.demo",
        "--model",
        "/m/a.safetensors",
        "--save_to",
        "/m/b.safetensors",
    ]
    assert "paused" in message


def test_the_table_and_the_header_line_say_what_runs_and_waits(tmp_path: Path) -> None:
    queue = RunQueue(tmp_path / "queue.json")
    assert html.unescape(actions.line_html(queue, EN)).endswith(
        ">Queue: empty</a>"
    ) and not actions.line_active(queue)
    ids = [queue.add("training", "dreambooth", name, ["true"]).id for name in ("a", "b", "c")]
    queue.update(ids[0], status="running")
    queue.update(ids[2], status="failed", exit_code=3)
    queue.add("tool", "resize_lora", "small.safetensors", ["true"])
    rows = actions.table_rows(queue.items(), EN)
    assert [row[:4] for row in rows] == [
        ["", EN.t("ui.tab.dreambooth"), "a", EN.t("ui.status.running")],
        ["1", EN.t("ui.tab.dreambooth"), "b", "Waiting"],
        ["", EN.t("ui.tab.dreambooth"), "c", EN.t("ui.status.failed", code=3)],
        ["2", EN.t("ui.tooltab.resize_lora"), "small.safetensors", "Waiting"],
    ]
    assert ">Queue: 1 running, 2 waiting</a>" in actions.line_html(queue, EN) and actions.line_active(queue)
    assert 'href="queue"' in actions.line_html(queue, JA) and "実行中 1、待機中 2" in actions.line_html(
        queue, JA
    )
    queue.update(ids[0], status="finished")
    queue.set_paused(True)  # waiting, but nothing will start: the line has nothing to follow
    assert "(paused)" in actions.line_html(queue, EN) and not actions.line_active(queue)


def test_a_generation_is_listed_under_the_generate_page_and_its_start_is_seen(tmp_path: Path) -> None:
    queue = RunQueue(tmp_path / "queue.json")
    assert actions.last_start(queue, "generate") == ""
    grid = queue.add("generate", "generate", "epochs: sks dog", ["true"]).id
    assert actions.table_rows(queue.items(), EN)[0][1:3] == ["Generate", "epochs: sks dog"]
    assert actions.table_rows(queue.items(), JA)[0][1] == "画像生成" == JA.t("ui.page.generate")
    assert actions.item_choice(queue.item(grid), EN)[0].startswith("Generate  epochs: sks dog  (Waiting)")
    queue.update(grid, status="finished", started_at=10.0)
    first = actions.last_start(queue, "generate")
    assert first and actions.last_start(queue, "tool") == ""
    queue.requeue(grid)  # queued again: the same id, a new start
    queue.update(grid, status="running", started_at=20.0)
    assert actions.last_start(queue, "generate") not in ("", first)
