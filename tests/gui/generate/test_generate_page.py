"""The Generate page's History chooser and Generate button without a browser (gui/generate/generate_page.py): which
recorded runs it offers, what "use its saved files as X" fills in, and that a bad form starts nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.generate.generate_args import DEFAULTS
from gui.generate.generate_page import GeneratePage, network_runs
from gui.i18n import Translator
from gui.runs.run_history import RunHistory
from gui.runs.runner import TrainingRunner
from tests.gui.generate.history_records import record_run


def saves_of(folder: Path, *names: str) -> str:
    """A trainer's progress lines for saved files `names` in `folder` (made empty here)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for step, name in enumerate(names, 1):
        (folder / name).write_bytes(b"")
        lines.append(
            f'@@progress {{"v":1,"event":"checkpoint","path":"{folder / name}","kind":"model","step":{step}}}'
        )
    return "\n".join(
        [*lines, f'@@progress {{"v":1,"event":"end","reason":"completed","output":"{folder / names[-1]}"}}']
    )


def test_the_chooser_offers_runs_that_saved_networks(tmp_path: Path) -> None:
    history = RunHistory(tmp_path / "runs")
    t = Translator("en")
    lora = record_run(history, ["x"], saves_of(tmp_path / "a", "a-000001.safetensors", "a.safetensors"),
                      {"output_name": "a"})  # fmt: skip
    record_run(
        history, ["x"], saves_of(tmp_path / "b", "b.safetensors"), {"output_name": "b"}, kind="finetune"
    )
    gone = record_run(history, ["x"], saves_of(tmp_path / "c", "c.safetensors"), {"output_name": "c"})
    (tmp_path / "c" / "c.safetensors").unlink()
    record_run(history, ["x"], "", {"output_name": "d"}, kind="lora", exit_code=1)  # failed before any save
    offered = [run_id for _, run_id in network_runs(history, t)]
    assert offered == [lora]  # no fine-tune (a whole model), no run whose files are gone, none without saves
    assert gone not in offered


def test_a_runs_saves_become_the_x_axis(tmp_path: Path) -> None:
    history = RunHistory(tmp_path / "runs")
    run_id = record_run(history, ["x"], saves_of(tmp_path / "out", "a-000001.safetensors", "a.safetensors"),
                        {"pretrained_model_name_or_path": "/models/base", "output_name": "a"})  # fmt: skip
    page = GeneratePage(Translator("en"), None, history, TrainingRunner())
    message, x_axis, x_values, y_axis, y_values, model = page.use_run(run_id, "", "")
    assert (x_axis, y_axis, y_values, model) == ("network", "weight", "0, 0.5, 1", "/models/base")
    assert x_values == f"{tmp_path / 'out' / 'a-000001.safetensors'}\n{tmp_path / 'out' / 'a.safetensors'}"
    assert "the 2 files run" in message
    # a chosen Y axis and a typed-in model stay as they are
    _, _, _, y_axis, y_values, model = page.use_run(run_id, "/models/mine", "seed")
    assert all(
        isinstance(value, dict) and value.get("__type__") == "update" for value in (y_axis, y_values, model)
    )
    assert page.use_run(None, "", "")[0] == "Choose a training run first."


def test_a_bad_form_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOHYA_GUI_STATE_DIR", str(tmp_path / "state"))  # where Generate keeps the form
    runner = TrainingRunner()
    page = GeneratePage(Translator("ja"), None, RunHistory(tmp_path / "runs"), runner)
    message = page.generate({**DEFAULTS, "outdir": str(tmp_path / "gen"), "prompt": "a dog",
                             "pretrained_model_name_or_path": str(tmp_path / "missing.safetensors")})  # fmt: skip
    assert message.startswith("生成できません:") and "missing.safetensors" in message
    assert runner.snapshot()["status"] == "idle"
    assert (tmp_path / "state" / "generate_form.json").is_file()
