"""The trainer's --in_json dataset takes each image's bucket from `train_resolution` when recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from backend.data import DatasetError, TrainDataset, specs_from_args


def dataset(tmp_path: Path, entries: dict[str, dict]) -> TrainDataset:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for key in entries:
        Image.new("RGB", (96, 64), (1, 2, 3)).save(folder / f"{key}.png")
    (tmp_path / "meta.json").write_text(json.dumps(entries), encoding="utf-8")
    args = {"in_json": str(tmp_path / "meta.json"), "train_data_dir": str(folder), "resolution": "64"}
    return TrainDataset(specs_from_args(args)[0])


def test_recorded_bucket_wins_over_the_trainer_resolution(tmp_path: Path) -> None:
    data = dataset(tmp_path, {"a": {"caption": "x", "train_resolution": [128, 64]}, "b": {"caption": "y"}})
    by_name = {Path(r.path).stem: r for r in data.records}
    assert by_name["a"].bucket_reso == (128, 64)
    assert by_name["a"].resized_size == (128, 85)  # covers the bucket, keeps the aspect ratio
    assert by_name["b"].bucket_reso == (64, 64)  # no record: the trainer's own --resolution


@pytest.mark.parametrize("value", [[100, 64], [64], "64,64", [0, 64], [64.0, 64]])
def test_bad_train_resolution_is_reported(tmp_path: Path, value: object) -> None:
    with pytest.raises(DatasetError) as info:
        dataset(tmp_path, {"a": {"train_resolution": value}})
    assert f"train_resolution {value!r}" in str(info.value)
    assert "not [width, height] in positive multiples of 8" in str(info.value)
