"""The History page's actions (gui/history/history_actions.py) on records of fake runs: the table, the option
differences and both loss curves of two runs, "Open in its page" (the form where the page restores it from) and
"Run again" (the record's TOML through the same runner; refused while a run goes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.history import history_actions as actions
from gui.i18n import Translator
from gui.runs.run_history import RunHistory
from gui.runs.runner import TrainingRunner
from gui.training import form_state
from gui.training.training_kinds import LORA
from tests.gui.runs.test_run_history import start_run
from tests.gui.runs.test_runner import script

T = Translator("en")
JA = Translator("ja")


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[RunHistory, TrainingRunner, str, str]:
    history = RunHistory(tmp_path / "runs")
    runner = TrainingRunner(history=history, stop_timeout=5)
    start_run(runner, tmp_path, "katana", 1e-4)
    start_run(runner, tmp_path, "wakizashi", 5e-05)
    newer, older = (run["id"] for run in history.runs())
    return history, runner, older, newer


def test_option_diff_lists_only_what_differs_nested_keys_flattened() -> None:
    first = {"learning_rate": 1e-4, "network_dim": 8, "accelerate": {"num_processes": 1}, "seed": 1}
    second = {"learning_rate": 5e-5, "network_dim": 8, "accelerate": {"num_processes": 2}}
    assert actions.option_diff(first, second) == [
        ("accelerate.num_processes", 1, 2), ("learning_rate", 1e-4, 5e-5), ("seed", 1, None),
    ]  # fmt: skip


def test_the_table_and_a_comparison_of_two_runs(two_runs: tuple) -> None:
    history, _, older, newer = two_runs
    rows = actions.table_rows(history.runs(), JA)
    assert rows[0][:4] == ["完了", "LoRA学習", "tiny-sd15", "Standard"] and rows[0][6] == "0.375"
    assert rows[0][7] == "wakizashi.safetensors" and len(rows) == 2
    result = actions.compare(history, older, newer, T)
    labels = [f"{T.option_label(name)} ({name})" for name in ("learning_rate", "output_name")]
    assert result.rows == [[labels[0], "0.0001", "5e-05"], [labels[1], "katana", "wakizashi"]]
    assert result.message == "2 option(s) differ."
    assert list(result.plot["series"].unique()) == ["A", "B"] and len(result.plot) == 4
    assert actions.compare(history, older, older, T).message == T.t("ui.history.pick_two")


def test_open_in_its_page_writes_the_form_the_page_restores(two_runs: tuple, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    history, _, older, _ = two_runs
    monkeypatch.setenv(form_state.STATE_DIR_ENV, str(tmp_path / "state"))
    opened = actions.open_in_page(history, older, T)
    assert opened.route == "" and "LoRA" in opened.message
    assert form_state.load_form(LORA).values["output_name"] == "katana"
    assert actions.open_in_page(history, "no-such-run", T).route is None


def test_run_again_starts_the_records_toml_and_is_refused_while_a_run_goes(two_runs: tuple, tmp_path: Path) -> None:
    history, runner, older, _ = two_runs
    (tmp_path / "katana.toml").unlink()  # the record's own copy is what runs again
    message = actions.run_again(history, older, T, runner)
    assert message == T.t("ui.history.started_again", run=older)
    runner.wait(30)
    newest = history.runs()[0]
    assert newest["status"] == "finished" and newest["rerun_of"] == older and newest["output_name"] == "katana"
    assert str(history.folder / older / "config.toml") in history.record(newest["id"])["argv"]
    runner.start(script(tmp_path, "time.sleep(60)\n"), meta={"kind": "lora"})
    try:
        assert actions.run_again(history, older, T, runner) == T.t("ui.already_running")
    finally:
        runner.stop()
    assert actions.run_again(history, "", T, runner) == T.t("ui.history.pick_one")
