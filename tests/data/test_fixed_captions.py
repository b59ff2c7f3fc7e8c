"""The fixed per-image captions that text-encoder output caching encodes."""

from pathlib import Path

import pytest

from backend.data import DatasetError, DatasetGroup, TrainDataset, specs_from_args


def group_for(root: Path, **args) -> DatasetGroup:
    specs = specs_from_args({"train_data_dir": str(root), "resolution": "64", **args})
    return DatasetGroup([TrainDataset(s, seed=3, warn=lambda _: None) for s in specs], seed=3)


def test_fixed_captions_are_exactly_the_captions_batches_carry(folder_dataset: Path) -> None:
    group = group_for(folder_dataset, caption_prefix="best", caption_suffix="photo")
    fixed = dict(group.fixed_captions())
    assert len(fixed) == 5
    assert fixed[str(folder_dataset / "10_sks dog" / "img1.png")] == "best sks dog, tag1, outdoors photo"
    assert fixed[str(folder_dataset / "2_cat" / "c0.jpg")] == "best cat photo"  # class tokens, no caption file
    for epoch in (1, 2):
        group.set_epoch(epoch)
        batches = [group[i] for i in range(len(group))]
        seen = {pair for b in batches for pair in zip(b["image_paths"], b["captions"], strict=True)}
        assert seen == set(fixed.items())


def test_fixed_captions_need_captions_that_never_change(folder_dataset: Path) -> None:
    with pytest.raises(DatasetError, match=r"10_sks dog: caption_dropout_rate"):
        group_for(folder_dataset, caption_dropout_rate=0.1).fixed_captions()
