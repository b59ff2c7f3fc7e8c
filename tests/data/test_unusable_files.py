"""Unusable files in a dataset are all listed at once, and images that cannot be read either stop the run
(the default) or, with --skip_unreadable_images, are left out with one warning in the same words."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from backend.data import preflight_report, specs_from_args
from backend.data.config import specs_from_dataset_config
from backend.data.dataset import TrainDataset
from backend.data.errors import DatasetError
from backend.data.scan import scan_dataset
from backend.options.dataset_config import load_dataset_config
from backend.options.errors import OptionError
from backend.tools.dataset import verify_dataset
from backend.tools.metadata.metadata_io import MetadataError
from backend.tools.metadata.metadata_merge import merge_text_files

from .helpers import make_image

CAPTIONS = {
    "sjis": ("猫、屋外".encode("cp932"), "not UTF-8 text (it looks like Shift_JIS)"),
    "utf16": ("cat, outdoors".encode("utf-16"), "not UTF-8 text (it is UTF-16, Notepad's \"Unicode\")"),
    "latin1": ("café, outdoors".encode("latin-1"), "not UTF-8 text"),
}


@pytest.fixture
def captions_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "train" / "2_cat"
    for name, (raw, _) in CAPTIONS.items():
        make_image(folder / f"{name}.png")
        (folder / f"{name}.txt").write_bytes(raw)
    make_image(folder / "good.png")
    (folder / "good.txt").write_text("cat, indoors", encoding="utf-8")
    return folder


def test_every_caption_file_that_is_not_utf8_is_listed(captions_folder: Path) -> None:
    (spec,) = specs_from_args({"train_data_dir": str(captions_folder.parent), "resolution": "64",
                               "caption_extension": ".txt"})
    problems = {Path(p.path).name: p for p in scan_dataset(spec, warn=lambda _: None).problems}
    assert set(problems) == {"sjis.txt", "utf16.txt", "latin1.txt"}
    for name, (_, reason) in CAPTIONS.items():
        assert problems[f"{name}.txt"].problem == f"caption file is {reason}"
        assert "save it again as UTF-8" in problems[f"{name}.txt"].fix
    report = preflight_report([spec])
    assert sorted(Path(p["path"]).name for p in report["problems"]) == ["latin1.txt", "sjis.txt", "utf16.txt"]
    with pytest.raises(DatasetError) as caught:
        TrainDataset(spec, warn=lambda _: None)
    assert str(caught.value).startswith("3 file(s) in the dataset cannot be used:")
    assert all(f"{name}.txt" in str(caught.value) for name in CAPTIONS)
    tool = verify_dataset.verify(verify_dataset.build_parser().parse_args(
        [str(captions_folder.parent), "--caption_extension", ".txt", "--resolution", "64"]))
    assert sorted(Path(p["path"]).name for p in tool["unreadable"]) == ["latin1.txt", "sjis.txt", "utf16.txt"]


def test_metadata_merge_lists_every_text_file_that_is_not_utf8(captions_folder: Path) -> None:
    keyed = {path.stem: path for path in sorted(captions_folder.glob("*.png"))}
    with pytest.raises(MetadataError) as caught:
        merge_text_files({}, keyed, "caption", ".txt")
    message = str(caught.value)
    assert message.startswith("3 text file(s) are not UTF-8 text; save them again as UTF-8")
    assert all(str(captions_folder / f"{name}.txt") in message for name in CAPTIONS)


@pytest.fixture
def images_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "train" / "3_dog"
    for i in range(2):
        make_image(folder / f"good{i}.png")
    (folder / "empty.png").write_bytes(b"")
    good = (folder / "good0.png").read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 2])
    (folder / "page.jpg").write_text("<html>not found</html>")
    return folder


def _spec(folder: Path, skip: bool):
    (spec,) = specs_from_args({"train_data_dir": str(folder.parent), "resolution": "64", "skip_unreadable_images": skip})
    return spec


def test_unreadable_images_stop_the_run_listing_all_with_the_option_to_skip(images_folder: Path) -> None:
    spec = _spec(images_folder, skip=False)
    warnings: list[str] = []
    with pytest.raises(DatasetError) as caught:
        TrainDataset(spec, warn=warnings.append)
    message = str(caught.value)
    assert message.startswith("3 file(s) in the dataset cannot be used:")
    assert all(name in message for name in ("empty.png", "cut.png", "page.jpg"))
    assert message.count("or train without it: --skip_unreadable_images") == 3
    report = preflight_report([spec])
    assert report["ok"] is False and len(report["problems"]) == 3
    assert not any("skipping" in w or "training without" in w for w in warnings + report["warnings"])


def test_with_the_option_they_are_left_out_with_one_warning(images_folder: Path) -> None:
    spec = _spec(images_folder, skip=True)
    warnings: list[str] = []
    dataset = TrainDataset(spec, warn=warnings.append)
    assert sorted(Path(r.path).name for r in dataset.records) == ["good0.png", "good1.png"]
    assert dataset.num_train_images == 6 and len(dataset) == 6
    [warning] = [w for w in warnings if "cannot be read" in w]
    assert warning.startswith("training without 3 image file(s) that cannot be read (--skip_unreadable_images):")
    report = preflight_report([spec])
    assert report["ok"] is True and report["problems"] == []
    assert any(w.startswith("training without 3 image file(s)") for w in report["warnings"])
    (entry,) = report["datasets"]
    assert entry["num_train_images"] == 6 and entry["subsets"][0]["images"] == 2
    assert entry["subsets"][0]["unreadable_images"] == 3


def test_the_option_does_not_hide_other_problems(images_folder: Path) -> None:
    (images_folder / "good1.txt").write_bytes("犬".encode("cp932"))
    spec = dataclasses.replace(_spec(images_folder, skip=True), subsets=tuple(
        dataclasses.replace(s, caption_extension=".txt") for s in _spec(images_folder, skip=True).subsets))
    with pytest.raises(DatasetError, match="good1.txt"):
        TrainDataset(spec, warn=lambda _: None)
    assert [Path(p["path"]).name for p in preflight_report([spec])["problems"]] == ["good1.txt"]


def test_the_option_is_a_training_option_not_a_dataset_config_key(tmp_path: Path) -> None:
    config = tmp_path / "data.toml"
    config.write_text("[general]\nskip_unreadable_images = true\n[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'x'\n")
    with pytest.raises(OptionError, match='"skip_unreadable_images" is a training option, not a dataset key'):
        load_dataset_config(config)
    args = argparse.Namespace(skip_unreadable_images=True, train_data_dir=None)
    config.write_text(f"[[datasets]]\n[[datasets.subsets]]\nimage_dir = '{tmp_path}'\n")
    (spec,) = specs_from_dataset_config(load_dataset_config(config), args, 64)
    assert spec.skip_unreadable_images is True


def test_images_left_out_are_not_counted_in_the_caption_warnings(images_folder: Path) -> None:
    # Caption files beside one usable and two unreadable images, under the other usual extension.
    for name in ("good0", "empty", "cut"):
        (images_folder / f"{name}.txt").write_text("dog", encoding="utf-8")
    spec = _spec(images_folder, skip=True)
    warnings: list[str] = []
    TrainDataset(spec, warn=warnings.append)
    expected = [
        f"2 of 2 image(s) in {images_folder} have no '.caption' caption file; they train with the class tokens 'dog'",
        f"1 image(s) in {images_folder} have a '.txt' caption file but caption_extension is '.caption': set "
        "--caption_extension .txt (or caption_extension = \".txt\" in the dataset config) to use them",
    ]
    assert [w for w in warnings if "caption" in w] == expected
    assert [w for w in preflight_report([spec])["warnings"] if "caption" in w] == expected
