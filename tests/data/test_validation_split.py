"""The validation split: held-out images are deterministic, validated once each and never trained on."""

from pathlib import Path

import pytest

from backend.data import DatasetError, DatasetGroup, DatasetSpec, SubsetSpec, TrainDataset, specs_from_args
from backend.data.config import specs_from_dataset_config
from backend.data.split import validation_count
from backend.options.dataset_config import load_dataset_config

from .helpers import make_image


def dataset_for(root: Path, seed: int = 0, reg: Path | None = None, **args) -> TrainDataset:
    args = {"train_data_dir": str(root), "reg_data_dir": str(reg) if reg else None, "resolution": "64", **args}
    (spec,) = specs_from_args(args, warn=lambda _: None)
    return TrainDataset(spec, seed=seed, warn=lambda _: None)


@pytest.fixture
def split_dataset(tmp_path: Path) -> tuple[Path, Path]:
    """train/3_dog (5 images), train/2_cat (4 images), reg/1_person (6 images)."""
    for i in range(5):
        make_image(tmp_path / "train" / "3_dog" / f"d{i}.png")
    for i in range(4):
        make_image(tmp_path / "train" / "2_cat" / f"c{i}.png")
    for i in range(6):
        make_image(tmp_path / "reg" / "1_person" / f"p{i}.png")
    return tmp_path / "train", tmp_path / "reg"


def trained_paths(dataset: TrainDataset, epochs: int = 3) -> set[str]:
    return {
        path
        for epoch in range(1, epochs + 1)
        for index in range(len(dataset))
        for path in dataset.load_batch(epoch, index)["image_paths"]
    }


def test_validation_count_rounds_half_up() -> None:
    assert [validation_count(n, 0.34) for n in (1, 2, 3, 5)] == [0, 1, 1, 2]
    assert validation_count(4, 0.125) == 1 and validation_count(10, 0.0) == 0


def test_held_out_images_are_never_trained_on(split_dataset: tuple[Path, Path]) -> None:
    train_dir, reg_dir = split_dataset
    train = dataset_for(train_dir, seed=3, reg=reg_dir, validation_split=0.4, train_batch_size=2)
    validation = train.validation_dataset()
    assert validation is not None
    held_out = {r.path for r in validation.records}
    # round(5 x 0.4) = 2 dogs and round(4 x 0.4) = 2 cats; regularization images are never held out.
    assert sorted(Path(p).parent.name for p in held_out) == ["2_cat", "2_cat", "3_dog", "3_dog"]
    trained = trained_paths(train)
    assert not trained & held_out
    assert {p for p in trained if "reg" not in Path(p).parts} | held_out == {
        str(p) for p in train_dir.rglob("*.png")
    }
    # The batches the validation pass sees hold exactly the held-out images, once each.
    assert sorted(p for i in range(len(validation)) for p in validation.load_batch(1, i)["image_paths"]) == sorted(
        held_out
    )
    assert all(r.num_repeats == 1 for r in validation.records)
    assert validation.num_train_images == 4 and validation.num_reg_images == 0
    assert train.num_train_images == 3 * 3 + 2 * 2  # the held-out images' repeats are gone from training


def test_split_is_deterministic_and_follows_the_validation_seed(split_dataset: tuple[Path, Path]) -> None:
    train_dir, _ = split_dataset

    def held_out(seed: int, **args) -> set[str]:
        validation = dataset_for(train_dir, seed=seed, validation_split=0.4, **args).validation_dataset()
        assert validation is not None
        return {r.path for r in validation.records}

    assert held_out(1) == held_out(1)
    assert len({frozenset(held_out(seed)) for seed in range(6)}) > 1, "the training seed picks the split"
    assert held_out(1, validation_seed=9) == held_out(2, validation_seed=9), "validation_seed wins"


def test_no_split_means_no_validation(split_dataset: tuple[Path, Path]) -> None:
    train_dir, _ = split_dataset
    dataset = dataset_for(train_dir)
    assert dataset.validation_dataset() is None
    assert DatasetGroup([dataset]).validation_group() is None
    assert dataset.num_train_images == 5 * 3 + 4 * 2


def test_validation_group_takes_the_datasets_with_a_split(split_dataset: tuple[Path, Path]) -> None:
    train_dir, _ = split_dataset
    group = DatasetGroup([dataset_for(train_dir), dataset_for(train_dir, validation_split=0.25)])
    validation = group.validation_group()
    assert validation is not None and len(validation.datasets) == 1
    assert validation.num_train_images == 1 + 1  # round(5 x 0.25) dogs + round(4 x 0.25) cats


def test_a_split_must_leave_images_on_both_sides(tmp_path: Path) -> None:
    for i in range(2):
        make_image(tmp_path / "train" / "1_dog" / f"{i}.png")
    with pytest.raises(DatasetError, match="validation_split 0.1 holds out no image"):
        dataset_for(tmp_path / "train", validation_split=0.1)
    with pytest.raises(DatasetError, match="validation_split 0.9 holds out all 2 training images"):
        dataset_for(tmp_path / "train", validation_split=0.9)
    subset = SubsetSpec(image_dir=str(tmp_path / "train" / "1_dog"))
    for bad in (1.0, -0.1):
        with pytest.raises(DatasetError, match="validation_split must be at least 0 and less than 1"):
            DatasetSpec(subsets=(subset,), resolution=(64, 64), validation_split=bad)


def test_dataset_config_sets_the_split_per_dataset(split_dataset: tuple[Path, Path], tmp_path: Path) -> None:
    train_dir, _ = split_dataset
    config = tmp_path / "datasets.toml"
    config.write_text(
        "[general]\nvalidation_seed = 5\n"
        f"[[datasets]]\nresolution = 64\nvalidation_split = 0.25\n[[datasets.subsets]]\nimage_dir = '{train_dir / '3_dog'}'\n"
        f"[[datasets]]\nresolution = 64\n[[datasets.subsets]]\nimage_dir = '{train_dir / '2_cat'}'\n"
    )
    first, second = specs_from_dataset_config(load_dataset_config(config), {"validation_split": 0.5})
    assert (first.validation_split, first.validation_seed) == (0.25, 5)
    assert (second.validation_split, second.validation_seed) == (0.5, 5)  # the command line fills the gap
