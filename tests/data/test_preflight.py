import json
from pathlib import Path

from backend.data import DatasetSpec, SubsetSpec, format_bucket_table, preflight_report, specs_from_args
from backend.data.dataset import TrainDataset

from .helpers import make_image, make_noise


def test_report_summarizes_subsets_captions_problems_and_buckets(tmp_path: Path) -> None:
    root = tmp_path / "train"
    for i in range(3):
        make_image(root / "10_sks" / f"{i}.png", (96, 64))
        (root / "10_sks" / f"{i}.txt").write_text("sks, tag")
    make_image(root / "10_sks" / "tiny.png", (16, 16))
    (root / "10_sks" / "broken.png").write_text("not an image")
    specs = specs_from_args({"train_data_dir": str(root), "resolution": "64", "train_batch_size": 2})
    report = preflight_report(specs)
    json.dumps(report)  # the trainer prints it as JSON
    assert report["ok"] is False and not report["errors"]
    assert [Path(p["path"]).name for p in report["problems"]] == ["broken.png"]
    (dataset,) = report["datasets"]
    (subset,) = dataset["subsets"]
    # Counts are of the images that can be read (broken.png is a problem, not an image to train on).
    assert subset["images"] == 4 and subset["unreadable_images"] == 1
    assert subset["captions_found"] == 0 and subset["captions_missing"] == 4
    assert "--caption_extension .txt" in subset["caption_hint"]
    assert dataset["buckets"] == [{"resolution": [64, 64], "images": 4, "count": 40, "batches": 20}]
    assert report["num_batches_per_epoch"] == 20
    assert any("enlarged" in w and "tiny.png" in w for w in report["warnings"])


def test_report_turns_structural_errors_into_entries(tmp_path: Path) -> None:
    make_image(tmp_path / "train" / "a.png")
    spec = DatasetSpec((SubsetSpec(str(tmp_path / "train" / "missing")),), (64, 64))
    report = preflight_report([spec])
    assert report["ok"] is False and "does not exist" in report["errors"][0]


def test_ok_report_and_human_table(tmp_path: Path) -> None:
    make_noise(tmp_path / "1_x" / "a.png", (64, 64))
    spec = DatasetSpec((SubsetSpec(str(tmp_path / "1_x"), class_tokens="x"),), (64, 64))
    assert preflight_report([spec])["ok"] is True
    table = format_bucket_table(TrainDataset(spec, warn=lambda _: None))
    assert "64x64" in table and "batches" in table
