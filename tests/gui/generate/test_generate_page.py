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
    form = {
        "pretrained_model_name_or_path": "/models/flux.safetensors",
        "model_type": "flux_dev",
        "output_name": "a",
        "clip_l": "/models/clip_l.safetensors",
        "t5xxl": "/models/t5xxl.safetensors",
        "ae": "/models/ae.sft",
    }
    run_id = record_run(
        history, ["x"], saves_of(tmp_path / "out", "a-000001.safetensors", "a.safetensors"), form
    )
    page = GeneratePage(Translator("en"), None, history, TrainingRunner())
    filled = page.use_run(run_id, "", "")
    assert "the 2 files run" in filled.pop("message")
    assert filled == {
        "x_axis": "network", "x_values": f"{tmp_path / 'out' / 'a-000001.safetensors'}\n{tmp_path / 'out' / 'a.safetensors'}",
        "y_axis": "weight", "y_values": "0, 0.5, 1",
        # the run's model with what it needs: its type and part files
        "pretrained_model_name_or_path": "/models/flux.safetensors", "model_type": "flux_dev",
        "v_parameterization": False, "clip_l": "/models/clip_l.safetensors", "t5xxl": "/models/t5xxl.safetensors",
        "ae": "/models/ae.sft", "vae": "", "clip_g": "",
    }  # fmt: skip
    # a chosen Y axis and a typed-in model stay as they are
    assert set(page.use_run(run_id, "/models/mine", "seed")) == {"message", "x_axis", "x_values"}
    assert page.use_run(None, "", "") == {"message": "Choose a training run first."}


def test_a_bad_form_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOHYA_GUI_STATE_DIR", str(tmp_path / "state"))  # where Generate keeps the form
    runner = TrainingRunner()
    page = GeneratePage(Translator("ja"), None, RunHistory(tmp_path / "runs"), runner)
    message = page.generate({**DEFAULTS, "outdir": str(tmp_path / "gen"), "prompt": "a dog",
                             "pretrained_model_name_or_path": str(tmp_path / "missing.safetensors")})  # fmt: skip
    assert message.startswith("生成できません:") and "missing.safetensors" in message
    assert runner.snapshot()["status"] == "idle"
    assert (tmp_path / "state" / "generate_form.json").is_file()
