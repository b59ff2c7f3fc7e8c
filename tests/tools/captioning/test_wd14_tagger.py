"""tag_images_by_wd14_tagger on the tiny ONNX tagger: tags, options, write modes, download cache, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.tools.captioning import hub_models, tag_images_by_wd14_tagger
from backend.tools.captioning.wd14_tagger import TaggerModel, preprocess, read_tag_table
from backend.tools.cli.light_cli import run_light_tool
from devtools.make_tiny_model import main as make_tiny_model_main
from devtools.tiny_captioners import TINY_TAGGER_SIZE
from tests.tools.image_sets import broken_image, make_image, progress_events


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-wd14")
    make_tiny_model_main(["--arch", "wd14", "--out", str(out)])  # the documented entry point
    return out


def run(*argv: str | Path) -> int:
    return run_light_tool(tag_images_by_wd14_tagger.main, [str(a) for a in argv])


def tags(path: Path) -> str:
    return path.read_text(encoding="utf-8").rstrip("\n")


def test_model_contract_and_preprocessing(tagger: Path) -> None:
    model = TaggerModel(tagger / "model.onnx")
    assert (model.size, model.fixed_batch, model.input_name) == (TINY_TAGGER_SIZE, None, "input_1:0")
    table = read_tag_table(tagger / "selected_tags.csv")
    assert model.num_outputs == len(table) and table.categories[:4] == [9, 9, 9, 9]
    array = preprocess(Image.new("RGB", (20, 10), (255, 0, 0)), model.size)
    assert array.shape == (TINY_TAGGER_SIZE, TINY_TAGGER_SIZE, 3) and array.dtype == np.float32
    middle, top = array[TINY_TAGGER_SIZE // 2, TINY_TAGGER_SIZE // 2], array[0, TINY_TAGGER_SIZE // 2]
    assert middle.tolist() == [0.0, 0.0, 255.0]  # BGR: red is the last channel
    assert top.tolist() == [255.0, 255.0, 255.0]  # padded to a square with white
    probs = model.predict(np.stack([array, array, array]))
    assert probs.shape == (3, len(table)) and ((probs >= 0) & (probs <= 1)).all()


def test_tags_a_folder_with_the_options(tagger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_image(tmp_path / "red.png", color=(255, 0, 0))
    make_image(tmp_path / "blue.jpg", color=(0, 0, 255))
    make_image(tmp_path / "green.webp", color=(0, 255, 0))
    broken_image(tmp_path / "broken.png")
    assert run(tmp_path, "--model_dir", tagger, "--batch_size", "2", "--remove_underscore", "--use_rating_tags",
               "--character_tags_first", "--undesired_tags", "simple_background", "--always_first_tags", "^_^",
               "--frequency_tags", "--onnx") == 0
    out = capsys.readouterr().out
    # Character tags first, then the rating first, then --always_first_tags; ^_^ keeps its underscore.
    assert tags(tmp_path / "red.txt") == "^_^, general, tiny hero (series), red theme"
    assert tags(tmp_path / "blue.txt") == "^_^, general, blue theme"
    assert tags(tmp_path / "green.txt") == "^_^, general, green theme"
    assert not (tmp_path / "broken.txt").exists()
    assert "3 written, 0 skipped, 1 failed" in out and "unreadable image" in out
    assert "^_^: 3" in out and "red theme: 1" in out  # --frequency_tags
    assert [e["step"] for e in progress_events(out) if e["event"] == "step"] == [1, 2, 3, 4]


def test_existing_tag_files_kept_unless_overwrite_or_append(tagger: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    make_image(tmp_path / "red.png", color=(255, 0, 0))
    tag_file = tmp_path / "red.txt"
    tag_file.write_text("my_tag, red_theme\n", encoding="utf-8")
    assert run(tmp_path, "--model_dir", tagger) == 0
    assert tags(tag_file) == "my_tag, red_theme"
    assert "tag file exists" in capsys.readouterr().out
    for _ in range(2):  # appending twice adds nothing twice
        assert run(tmp_path, "--model_dir", tagger, "--append_tags") == 0
        assert tags(tag_file) == "my_tag, red_theme, simple_background, ^_^, tiny_hero_(series)"
    assert run(tmp_path, "--model_dir", tagger, "--overwrite", "--caption_separator", ",",
               "--character_threshold", "1.5") == 0
    assert tags(tag_file) == "red_theme,simple_background,^_^"


def test_download_is_cached_and_reused(tagger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_download(repo_id: str, filename: str, *, local_dir: Path, force_download: bool = False) -> str:
        calls.append(filename)
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        (Path(local_dir) / filename).write_bytes((tagger / filename).read_bytes())
        return str(Path(local_dir) / filename)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_models, "_unreachable", lambda: None)
    make_image(tmp_path / "images" / "red.png")
    models = tmp_path / "models"
    assert run(tmp_path / "images", "--model_dir", models, "--repo_id", "SmilingWolf/wd-vit-tagger-v3") == 0
    assert calls == ["model.onnx", "selected_tags.csv"]
    assert (models / "SmilingWolf_wd-vit-tagger-v3" / "model.onnx").is_file()
    assert run(tmp_path / "images", "--model_dir", models, "--repo_id", "SmilingWolf/wd-vit-tagger-v3",
               "--overwrite") == 0
    assert len(calls) == 2  # reused
    (models / "SmilingWolf_wd-vit-tagger-v3" / "model.onnx").unlink()  # e.g. an old TensorFlow-only download
    assert run(tmp_path / "images", "--model_dir", models, "--repo_id", "SmilingWolf/wd-vit-tagger-v3",
               "--overwrite") == 0
    assert calls[2:] == ["model.onnx"]  # only the missing file
    assert run(tmp_path / "images", "--model_dir", models, "--repo_id", "SmilingWolf/wd-vit-tagger-v3",
               "--overwrite", "--force_download") == 0
    assert calls[3:] == ["model.onnx", "selected_tags.csv"]


def test_offline_without_model_names_repo_and_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    make_image(tmp_path / "images" / "a.png")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert run(tmp_path / "images", "--model_dir", tmp_path / "models") == 2
    err = capsys.readouterr().err
    assert "SmilingWolf/wd-v1-4-convnext-tagger-v2" in err and "--model_dir" in err
    assert "model.onnx and selected_tags.csv" in err and "Traceback" not in err


def test_bad_folder_and_mismatched_tag_list(tagger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path / "missing", "--model_dir", tagger) == 2
    assert "does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.onnx").write_bytes((tagger / "model.onnx").read_bytes())
    (broken / "selected_tags.csv").write_text("tag_id,name,category,count\n1,solo,0,5\n", encoding="utf-8")
    make_image(tmp_path / "images" / "a.png")
    assert run(tmp_path / "images", "--model_dir", broken) == 2
    assert "--force_download" in capsys.readouterr().err
