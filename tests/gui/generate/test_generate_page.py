"""The Generate page's History chooser and Generate and Add to queue buttons without a browser
(gui/generate/generate_page.py): which recorded runs it offers, what "use its saved files as X" fills in, that a bad
form starts and queues nothing, and that a good one queues what Generate would start."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gui.generate.generate_args import DEFAULTS
from gui.generate.generate_page import GeneratePage, network_runs
from gui.i18n import Translator
from gui.runs.run_history import RunHistory
from gui.runs.run_queue import RunQueue
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


class StartedRunner(TrainingRunner):
    """Keeps what Generate would start instead of starting it (the tool would load torch)."""

    started: tuple[list[str], dict[str, str], dict[str, Any]] | None = None

    def start(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
              meta: Mapping[str, Any] | None = None) -> int:  # fmt: skip
        self.started = (list(argv), dict(env or {}), dict(meta or {}))
        return 0


def test_add_to_queue_checks_as_generate_does_and_queues_its_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOHYA_GUI_STATE_DIR", str(tmp_path / "state"))
    queue, runner = RunQueue(tmp_path / "queue.json"), StartedRunner()
    page = GeneratePage(Translator("en"), None, RunHistory(tmp_path / "runs"), runner, queue)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text("{}", encoding="utf-8")  # a diffusers folder, to the checks
    bad = {**DEFAULTS, "pretrained_model_name_or_path": str(model), "outdir": str(tmp_path / "epochs"),
           "prompt": "a dog", "width": "wide", "network_1": str(tmp_path / "gone.safetensors")}  # fmt: skip
    refused = page.add_to_queue(bad)
    assert refused == page.generate(bad) and refused.startswith("Cannot generate:")  # the same problems
    assert "--width" in refused and queue.items() == [] and runner.started is None
    refused = page.add_to_queue({**bad, "width": "512"})  # the tool's own checks: the network file is gone
    assert "gone.safetensors" in refused and queue.items() == []

    good = {**bad, "width": "512", "network_1": "", "prompt": "sks dog, in a park --w 512\na cat",
            "x_axis": "seed", "x_values": "1, 2, 3", "y_axis": "cfg", "y_values": "5, 7"}  # fmt: skip
    message = page.add_to_queue(good)
    (item,) = queue.items()
    assert "Added to the queue (position 1 of 1 waiting)" in message and "a 3 × 2 grid, 12 images" in message
    assert (item.kind, item.page, item.name, item.status) == ("generate", "generate", "epochs: sks dog, in a park",
                                                             "waiting")  # fmt: skip
    assert page.generate(good).startswith("Started: a 3 × 2 grid")
    assert runner.started == (item.argv, item.env, item.meta) == (item.argv, {"KOHYA_LANGUAGE": "en"},
                                                                  {"kind": "generate"})  # fmt: skip
    assert (tmp_path / "state" / "generate_form.json").is_file()  # saved as Generate saves it
