"""Quick LoRA's steps on the tiny SD 1.5 model, without a browser: check (the model's family, the images), caption
(the captioner's command over the training folder, never the source), prepare (the settings), open in the LoRA page
(the form the LoRA page restores) and train (the run the LoRA page's Start would start). Runners are fakes here; the
browser test runs the real captioner and trainer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gui.i18n import Translator
from gui.quick import quick_actions as actions
from gui.training import form_state
from gui.training.training_kinds import LORA
from tests.gui.quick.test_quick_work_folder import snapshot
from tests.tools.image_sets import make_image


def meta_config(runner: FakeRunner) -> str:
    return str(runner.started[0][2]["config"])  # type: ignore[index]


class FakeRunner:
    def __init__(self) -> None:
        self.running = False
        self.started: list[tuple[list[str], dict[str, Any], dict[str, Any] | None]] = []

    def start(
        self, argv: list[str], env: dict[str, Any] | None = None, meta: dict[str, Any] | None = None
    ) -> None:
        self.started.append((argv, env or {}, meta))


@pytest.fixture
def inputs(tiny: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> actions.QuickInputs:
    monkeypatch.setenv(form_state.STATE_DIR_ENV, str(tmp_path / "state"))
    folder = tmp_path / "photos"
    for index, color in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200)]):
        make_image(folder / f"p{index}.png", (64, 64), color)
    (folder / "p0.txt").write_text("a red square\n", encoding="utf-8")
    return actions.QuickInputs(model=str(tiny.get("sd15").path), folder=str(folder), trigger="ohwx", kind="style",
                               card="cpu", resolution="64", epochs="1")  # fmt: skip


def test_check_says_what_it_found_and_asks_before_captioning(inputs: actions.QuickInputs) -> None:
    t = Translator("en")
    outcome = actions.check(inputs, t)
    assert "SD 1.x" in outcome.report and "3 usable images" in outcome.report
    assert "Caption the 2 images without a caption with BLIP" in outcome.offer
    assert outcome.work == str(Path(inputs.folder).parent / "photos_lora_ohwx")
    assert not Path(outcome.work).exists()  # checking writes nothing


@pytest.mark.parametrize(("change", "expected"), [
    ({"model": ""}, "Choose the base model file"),
    ({"model": "/nowhere/model.safetensors"}, "does not exist"),
    ({"folder": "/nowhere"}, "does not exist or is not a folder"),
    ({"trigger": ""}, "is empty"),
    ({"trigger": "a, b"}, "holds a comma"),
    ({"epochs": "two"}, "is not a whole number"),
])  # fmt: skip
def test_bad_input_is_named_before_anything_is_written(
    inputs: actions.QuickInputs, change: dict, expected: str
) -> None:
    for name, value in change.items():
        setattr(inputs, name, value)
    assert expected in actions.check(inputs, Translator("en")).report
    assert not any(Path(inputs.folder).parent.glob("*_lora_*"))


def test_a_model_file_that_is_no_base_model_is_refused(inputs: actions.QuickInputs, tmp_path: Path) -> None:
    fake = tmp_path / "notes.safetensors"
    fake.write_bytes(b"not a model")
    inputs.model = str(fake)
    assert "cannot be used" in actions.check(inputs, Translator("en")).report


def test_caption_runs_the_captioner_over_the_training_folder(
    inputs: actions.QuickInputs, tmp_path: Path
) -> None:
    before = snapshot(Path(inputs.folder))
    runner = FakeRunner()
    inputs.captioner_model = str(tmp_path / "blip")
    message = actions.caption(inputs, Translator("ja"), runner)  # type: ignore[arg-type]
    assert "BLIP" in message
    [(argv, env, _)] = runner.started
    image_dir = (
        Path(inputs.folder).parent / "photos_lora_ohwx" / "img" / "67_ohwx style"
    )  # 200 images per epoch / 3
    assert argv[1:] == ["-m", "backend.tools.make_captions", str(image_dir), "--caption_extension", ".txt",
                        "--model_id", str(tmp_path / "blip")]  # fmt: skip
    assert env["KOHYA_LANGUAGE"] == "ja"
    assert (image_dir / "p0.txt").read_text(encoding="utf-8") == "ohwx, a red square\n"
    assert snapshot(Path(inputs.folder)) == before


def test_wd14_tags_an_anime_sdxl_style_choice(inputs: actions.QuickInputs) -> None:
    argv = actions.caption_argv("wd14", Path("/w/img/1_x y"), "SmilingWolf/wd-vit-tagger-v3")
    assert argv[1:] == ["-m", "backend.tools.tag_images_by_wd14_tagger", "/w/img/1_x y", "--caption_extension", ".txt",
                        "--remove_underscore", "--repo_id", "SmilingWolf/wd-vit-tagger-v3"]  # fmt: skip


def test_prepare_open_and_train_give_the_lora_page_one_form(inputs: actions.QuickInputs) -> None:
    t = Translator("en")
    before = snapshot(Path(inputs.folder))
    prepared = actions.prepare(inputs, t)
    options = prepared.tab.run_options()
    work = Path(inputs.folder).parent / "photos_lora_ohwx"
    assert options["train_data_dir"] == str(work / "img") and options["output_dir"] == str(work / "model")
    assert (
        options["resolution"] == "64"
        and options["max_train_epochs"] == 1
        and options["mixed_precision"] == "no"
    )
    assert options["network_dim"] == 32  # a style
    assert options["min_bucket_reso"] == 64  # buckets that hold the resolution the user set (else refused)
    assert prepared.repeats == 67 and prepared.steps == 3 * 67
    assert (work / "sample_prompts.txt").read_text(encoding="utf-8").startswith("ohwx, ")
    assert "| Network rank (dim) (`network_dim`) | `32` |" in prepared.summary

    message, route = actions.open_in_lora(inputs, t)
    assert route == "."
    saved = json.loads(form_state.state_path(LORA).read_text(encoding="utf-8"))
    assert saved == prepared.tab.form_data()
    loaded = form_state.load_form(LORA)
    assert loaded is not None and loaded.problems == [] and loaded.values["network_dim"] == 32

    runner = FakeRunner()
    started = actions.train(inputs, t, runner)  # type: ignore[arg-type]
    assert t.t("ui.started", path=meta_config(runner)) in started
    [(argv, _, meta)] = runner.started
    assert meta is not None and meta["kind"] == "lora" and meta["form"]["output_name"] == "ohwx"
    assert "backend.train_network" in argv and Path(meta["config"]).is_file()
    assert snapshot(Path(inputs.folder)) == before


def test_the_page_is_built_in_both_languages_with_every_text(inputs: actions.QuickInputs) -> None:
    import gradio as gr

    from gui.quick.quick_page import build_quick_page

    for language in ("en", "ja"):
        t = Translator(language)
        with gr.Blocks():
            build_quick_page(t, None)
        actions.prepare(inputs, t)  # every reason, source and summary text of a run's choices
        actions.check(inputs, t)
        assert t.missing == set(), (language, sorted(t.missing))


def test_the_memory_planner_adjusts_a_gpu_run_and_says_so(
    inputs: actions.QuickInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from gui.quick import memory_fit

    asked = {}

    def planner(command: str, options: dict, card_bytes: int) -> SimpleNamespace:
        asked.update(options)
        return SimpleNamespace(fits=True, changes=[("train_batch_size", 1, "batch 2 needs 13.1 GB")])

    monkeypatch.setattr(memory_fit, "planner_fit", planner)
    inputs.card = "12"
    t = Translator("en")
    prepared = actions.prepare(inputs, t)
    assert asked["pretrained_model_name_or_path"] == inputs.model  # the planner reads the model's headers
    assert asked["train_batch_size"] == 2  # the family's savers for 12 GB, then the planner's estimate
    assert prepared.tab.options["train_batch_size"] == 1
    assert "(memory planner: batch 2 needs 13.1 GB)" in prepared.summary
    assert t.t("ui.quick.planner_fits", card="12 GB") in prepared.summary


def test_the_model_is_named_when_its_field_is_left(inputs: actions.QuickInputs) -> None:
    t = Translator("en")
    assert "SD 1.x" in actions.model_note(t, inputs.model)
    assert actions.model_note(t, "") == ""
    with pytest.raises(actions.QuickError) as refused:
        # FLUX.1 trains on the LoRA page, with its text encoders as files of their own
        actions.quick_preset(t, "flux_dev")
    assert r"no settings for FLUX.1 \[dev\] models" in refused.value.text  # Markdown-escaped
    assert "SDXL" in refused.value.text


def test_a_quick_run_can_be_queued(inputs: actions.QuickInputs, tmp_path: Path) -> None:
    from gui.runs.run_queue import RunQueue

    queue = RunQueue(tmp_path / "queue.json")
    text = actions.queue_run(inputs, Translator("en"), queue)
    [item] = queue.items()
    assert item.meta["kind"] == "lora" and item.meta["form"]["output_name"] == "ohwx"
    assert "backend.train_network" in item.argv and "network_dim" in text
