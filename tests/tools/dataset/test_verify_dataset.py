"""verify_dataset: counts, unreadable and tiny images, missing captions, buckets, --json, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.tools.cli.light_cli import run_light_tool
from backend.tools.dataset import verify_dataset
from tests.tools.image_sets import broken_image, make_image


def run(*argv: str | Path) -> int:
    return run_light_tool(verify_dataset.main, [str(a) for a in argv])


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "img"
    make_image(root / "5_sks dog" / "a.png", (512, 768))
    (root / "5_sks dog" / "a.txt").write_text("sks dog\n", encoding="utf-8")
    make_image(root / "5_sks dog" / "b.png", (768, 512))
    make_image(root / "2_ohwx cat" / "tiny.png", (64, 64))
    return root


def test_json_report_of_a_good_dataset(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(dataset, "--caption_extension", ".txt", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["images"] == 3 and report["num_train_images"] == 12
    dog = next(s for s in report["subsets"] if s["class_tokens"] == "sks dog")
    assert (dog["num_repeats"], dog["captions_found"], dog["captions_missing"]) == (5, 1, 1)
    assert dog["missing_captions"] == [str(dataset / "5_sks dog" / "b.png")]
    assert report["tiny"] == [{"path": str(dataset / "2_ohwx cat" / "tiny.png"), "size": [64, 64]}]
    assert {tuple(b["resolution"]): b["count"] for b in report["buckets"]} == {(384, 640): 5, (512, 512): 2,
                                                                              (640, 384): 5}


def test_unreadable_images_make_it_fail_with_the_file_named(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken_image(dataset / "5_sks dog" / "broken.png")
    assert run(dataset) == 1
    out = capsys.readouterr().out
    assert "NOT READY" in out and f"unusable: {dataset / '5_sks dog' / 'broken.png'}" in out
    assert "tiny: " in out and "bucket (WxH)" in out
    assert "have a '.txt' caption file but caption_extension is '.caption'" in out  # the trainer's own hint


def test_a_plain_image_folder_is_checked_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_image(tmp_path / "a.png", (512, 512))
    assert run(tmp_path, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 1 and "prepare_dataset" in report["warnings"][0]


def test_bad_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path / "missing") == 2
    assert "train_data_dir does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run(tmp_path / "empty", "--json") == 1
    assert "No data found" in json.loads(capsys.readouterr().out)["errors"][0]
