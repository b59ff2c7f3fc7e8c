"""prepare_dataset: the <repeats>_<tokens> layout, balance, links, never overwriting, aspect groups."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend.options.dataset_config import load_dataset_config
from backend.tools.cli.light_cli import run_light_tool
from backend.tools.dataset import prepare_dataset
from backend.tools.dataset.dataset_layout import balanced_repeats
from tests.tools.image_sets import make_image


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for i in range(4):
        make_image(src / "dogs" / f"d{i}.png", (48, 64))
    (src / "dogs" / "d0.txt").write_text("a dog\n", encoding="utf-8")
    (src / "dogs" / "d1.caption").write_text("a dog caption\n", encoding="utf-8")
    make_image(src / "dogs" / "wide.jpg", (64, 32))
    for i in range(2):
        make_image(src / "cats" / f"c{i}.png")
    make_image(src / "reg" / "r0.png")
    return src


def run(*argv: str | Path) -> int:
    return run_light_tool(prepare_dataset.main, ["--no_progress", *(str(a) for a in argv)])


def test_balanced_repeats() -> None:
    assert balanced_repeats([5, 2, 100], 40) == [8, 20, 1]


def test_builds_the_training_folders_with_balanced_repeats(sources: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run(out, "--concept", sources / "dogs", "sks", "dog", "--concept", sources / "cats", "ohwx", "cat",
               "--reg", sources / "reg", "dog", "--balance", "40") == 0
    text = capsys.readouterr().out
    dogs, cats, reg = out / "img" / "8_sks dog", out / "img" / "20_ohwx cat", out / "reg" / "1_dog"
    assert sorted(p.name for p in dogs.iterdir()) == ["d0.png", "d0.txt", "d1.caption", "d1.png", "d2.png",
                                                      "d3.png", "wide.jpg"]
    assert sorted(p.name for p in cats.iterdir()) == ["c0.png", "c1.png"]
    assert [p.name for p in reg.iterdir()] == ["r0.png"]
    assert (out / "model").is_dir() and (out / "log").is_dir()
    assert (dogs / "d0.txt").read_text(encoding="utf-8") == "a dog\n"
    assert not (dogs / "d0.png").is_symlink() and os.stat(dogs / "d0.png").st_ino != os.stat(sources / "dogs" / "d0.png").st_ino
    assert "5 images x 8 repeats = 40 per epoch" in text and "2 images x 20 repeats = 40 per epoch" in text
    assert f"--train_data_dir {out / 'img'} --reg_data_dir {out / 'reg'}" in text
    assert "10 placed, 0 skipped, 0 failed" in text


def test_never_overwrites_and_can_be_run_again(sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = [out, "--concept", sources / "cats", "ohwx", "cat", "--repeats", "3"]
    assert run(*argv) == 0
    edited = out / "img" / "3_ohwx cat" / "c0.txt"
    edited.write_text("edited in the destination\n", encoding="utf-8")
    (sources / "cats" / "c0.txt").write_text("from the source\n", encoding="utf-8")
    make_image(sources / "cats" / "c2.png")
    capsys.readouterr()
    assert run(*argv) == 0
    text = capsys.readouterr().out
    assert edited.read_text(encoding="utf-8") == "edited in the destination\n"
    assert (out / "img" / "3_ohwx cat" / "c2.png").is_file()
    assert "1 placed, 3 skipped, 0 failed" in text and "exists in the destination (never replaced)" in text


@pytest.mark.parametrize("mode", ["hardlink", "symlink"])
def test_links(mode: str, sources: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run(out, "--concept", sources / "cats", "ohwx", "cat", "--link", mode) == 0
    placed = out / "img" / "10_ohwx cat" / "c0.png"
    if mode == "symlink":
        assert placed.is_symlink() and placed.resolve() == (sources / "cats" / "c0.png").resolve()
    else:
        assert os.stat(placed).st_ino == os.stat(sources / "cats" / "c0.png").st_ino


def test_group_by_aspect_writes_bucket_folders_and_a_dataset_config(sources: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run(out, "--concept", sources / "dogs", "sks", "dog", "--reg", sources / "reg", "dog",
               "--group_by_aspect", "--resolution", "512") == 0
    concept = out / "img" / "10_sks dog"
    buckets = sorted(p.name for p in concept.iterdir())
    assert buckets == ["448x576", "704x320"]  # 48x64 portrait images, one 64x32 landscape image
    assert (concept / "448x576" / "d0.txt").is_file() and (concept / "704x320" / "wide.jpg").is_file()
    config = load_dataset_config(out / "dataset.toml")
    subsets = [s.params for d in config.datasets for s in d.subsets]
    assert {(Path(s["image_dir"]).name, s["class_tokens"], s["num_repeats"]) for s in subsets} == {
        ("448x576", "sks dog", 10), ("704x320", "sks dog", 10), ("512x512", "dog", 1)}
    assert f"--dataset_config {out / 'dataset.toml'}" in capsys.readouterr().out


def test_bad_sources_fail_before_anything_is_written(sources: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run(out, "--concept", sources / "dogs", "sks", "dog", "--concept", sources / "nope", "x", "y") == 2
    assert "concept folder does not exist" in capsys.readouterr().err
    assert not out.exists()
    assert run(out, "--concept", sources / "dogs", "sks", "d/og") == 2
    assert "cannot be part of a folder name" in capsys.readouterr().err
    assert run(out) == 2
    assert "no concept given" in capsys.readouterr().err
    assert run(out, "--concept", sources / "dogs", "sks", "dog", "--repeats", "2", "--balance", "10") == 2
