"""Progress panels poll only while a run goes and only in the shown tab (gui/runs/poll_timers.py), and send only
what changed (gui/runs/poll_updates.py)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from gui.app import build_app
from gui.runs.poll_timers import TabPolling, poll_timer, wake_after
from gui.runs.poll_updates import changed_only


def test_unchanged_values_are_skipped_and_a_first_poll_sends_everything() -> None:
    assert changed_only(["a", "b"], None) == ["a", "b"]
    assert changed_only(["a", "b"], ["a", "c"]) == [gr.skip(), "b"]
    assert changed_only(["a", None], ["x"]) == ["a", None]  # another shape: everything again


def test_a_managed_timer_stops_when_no_run_goes_and_an_unmanaged_one_never_does() -> None:
    with gr.Blocks():
        free = poll_timer(1.0)
        polling = TabPolling()
        with polling.tab("lora"):
            managed = poll_timer(1.0)
    assert not free.managed and free.outputs() == [] and free.after_tick(False) == ()
    assert managed.managed and managed.outputs() == [managed.timer]
    assert managed.after_tick(True) == (gr.skip(),)
    (stop,) = managed.after_tick(False)
    assert isinstance(stop, gr.Timer) and stop.active is False
    assert polling.timers == {"lora": [managed.timer]}


def events(app: gr.Blocks) -> list[dict[str, Any]]:
    return app.get_config_file()["dependencies"]


def test_a_start_restarts_its_tabs_timers_after_it_ran_and_a_tab_select_switches_them() -> None:
    with gr.Blocks() as app:
        polling = TabPolling()
        tabs: dict[str, gr.Tab] = {}
        with gr.Tab("A") as tabs["a"], polling.tab("a"):
            first = poll_timer(1.0).timer
            start = gr.Button()
            wake_after(start.click(lambda: None))
        with gr.Tab("B") as tabs["b"], polling.tab("b"):
            second = poll_timer(1.0).timer
        polling.wire(tabs)
    config = events(app)
    after_start = [e for e in config if e["targets"] == [(None, "then")]]
    assert len(after_start) == 1 and after_start[0]["outputs"] == [first._id]  # only its own tab's timer
    assert config[after_start[0]["trigger_after"]]["targets"] == [(start._id, "click")]  # once the run started
    selects = [e for e in config if e["targets"] and e["targets"][0][1] == "select"]
    assert {e["targets"][0][0] for e in selects} == {tabs["a"]._id, tabs["b"]._id}
    assert all(e["outputs"] == [first._id, second._id] for e in selects)
    shown_b = polling._shown("b")
    assert [timer.active for timer in shown_b] == [False, True]


def test_the_apps_panels_are_all_managed_and_every_start_wakes_them() -> None:
    app = build_app("en", headless=True)
    config = events(app)
    components = {c["id"]: c for c in app.get_config_file()["components"]}
    timers = {i for i, c in components.items() if c.get("type") == "timer"}
    # LoRA, Quick LoRA (its captioning and its run), DreamBooth, fine-tune (+ its metadata tools), Textual Inversion,
    # LECO, video, captioning, dataset, tools, generate, history, queue; and each page's queue line in its header
    # (gui/queue/queue_line.py)
    assert len(app.pages) == 13 and len(timers) == 15 + len(app.pages)
    ticks = [e for e in config if e["targets"] and e["targets"][0][0] in timers]
    assert all(set(e["outputs"]) & timers for e in ticks), "each tick can stop its own timer"
    woken = [e for e in config if e["targets"] == [(None, "then")] and set(e["outputs"]) <= timers and e["outputs"]]
    starters = {config[e["trigger_after"]]["targets"][0][0] for e in woken}
    start_ids = {i for i, c in components.items() if c.get("props", {}).get("elem_id") in ("lora_start", "finetune_start", "leco_start", "video_start", "history_rerun", "lora_queue", "video_queue", "queue_again", "generate_run", "generate_queue", "quick_train", "quick_caption")}
    assert start_ids <= starters and len(starters) > len(start_ids)  # the tool Run buttons too
    # One tick starts another page's timer: the Generate page's header line wakes its panel when a queued
    # generation begins (gui/queue/queue_line.py `wake_on_queue_start`).
    (waker,) = [e for e in ticks if set(e["outputs"]) & (timers - {e["targets"][0][0]})]
    assert components[waker["targets"][0][0]]["props"]["value"] == 5.0  # the line's timer (LINE_SECONDS)


class _FinishedRun:
    """A runner whose run has ended: what the panel's ticks read."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {"status": "finished", "pid": 7, "kind": "video", "log_lines": 1,
                                      "log_tail": ["step 2"], "samples": [], "history": {"step": []}}

    def snapshot(self, tail: int = 200) -> dict[str, Any]:
        return dict(self.state)


def test_the_quiet_ticks_after_a_run_ends_resend_its_video_and_output_read_late_restarts_them(tmp_path) -> None:
    from gui.i18n import Translator
    from gui.training.progress_panel import END_TICKS, build_progress_panel
    from gui.training.training_kinds import KINDS

    video = tmp_path / "sample.mp4"
    video.write_bytes(b"not really a video, but readable")
    run = _FinishedRun()
    with gr.Blocks() as app:
        polling = TabPolling()
        with polling.tab("video"):
            build_progress_panel(Translator("en"), run, "video", KINDS["video"])
    [tick] = [block.fn for block in app.fns.values() if getattr(block.fn, "__name__", "") == "on_tick"]
    last: dict[str, Any] = {"samples": 0, "points": 0, "log": 1, "run": 7, "texts": None, "status": "running"}

    def ticks(count: int) -> tuple[list[Any], list[Any], list[bool]]:
        nonlocal last
        logs, players, stops = [], [], []
        for _ in range(count):
            *_, log, player, last, timer = tick(last)
            logs.append(log)
            players.append(player)
            stops.append(isinstance(timer, gr.Timer) and timer.active is False)
        return logs, players, stops

    # The end seen before the reader got the last lines (a loaded machine): the first tick resends what there is.
    logs, players, stops = ticks(1)
    assert logs == ["step 2"] and isinstance(players[0], gr.Video) and not players[0].value and stops == [False]
    # The validation video and its log line read late: END_TICKS more ticks, each resending them (an update a
    # busy page dropped is not lost); the last stops the timer.
    run.state.update(samples=[{"path": str(video), "step": 2}], log_lines=2, log_tail=["step 2", "sample 0"])
    logs, players, stops = ticks(END_TICKS)
    assert all(isinstance(player, gr.Video) and player.value for player in players)
    assert logs == ["step 2\nsample 0"] * END_TICKS
    assert stops == [False] * (END_TICKS - 1) + [True]
