import json
from pathlib import Path

import pytest
import torch

from backend.data import (
    DatasetError,
    DatasetGroup,
    DatasetSpec,
    SubsetSpec,
    TrainDataset,
    dataset_dirs,
    make_dataloader,
    specs_from_args,
    tag_frequency,
)
from backend.data.dataset import balance_reg_repeats

from .helpers import make_image, make_noise


def group_for(root: Path, seed: int = 0, **args) -> DatasetGroup:
    args = {"train_data_dir": str(root), "resolution": "64", **args}
    specs = specs_from_args(args)
    return DatasetGroup([TrainDataset(s, seed=seed, warn=lambda _: None) for s in specs], seed=seed)


def test_balance_reg_repeats_like_sd_scripts() -> None:
    assert balance_reg_repeats(10, [1, 1, 1]) == [4, 3, 3]  # cycled
    assert balance_reg_repeats(3, [2, 2, 2]) == [2, 2, 0]  # truncated
    assert balance_reg_repeats(0, [1]) == [0]


def test_reg_images_balanced_and_weighted(tmp_path: Path) -> None:
    for i in range(2):
        make_image(tmp_path / "train" / "5_sks" / f"{i}.png")
    for i in range(3):
        make_image(tmp_path / "reg" / "1_person" / f"{i}.png")
    group = group_for(tmp_path / "train", reg_data_dir=str(tmp_path / "reg"), prior_loss_weight=0.5)
    (dataset,) = group.datasets
    assert dataset.num_train_images == 10 and dataset.num_reg_images == 3
    reg_total = sum(r.num_repeats for r in dataset.records if r.is_reg)
    assert reg_total == 10
    assert len(group) == 20
    batch = group[0]
    weights = {bool(r): float(w) for r, w in zip(batch["is_reg"], batch["loss_weights"], strict=True)}
    assert weights.get(True, 0.5) == 0.5 and weights.get(False, 1.0) == 1.0


def test_batches_stay_within_buckets_and_cover_every_repeat(tmp_path: Path) -> None:
    root = tmp_path / "train"
    for i in range(3):
        make_noise(root / "2_a" / f"wide{i}.png", (256, 128), seed=i)
    for i in range(2):
        make_noise(root / "2_a" / f"tall{i}.png", (128, 256), seed=10 + i)
    group = group_for(root, resolution="128", enable_bucket=True, min_bucket_reso=64, max_bucket_reso=256,
                      bucket_reso_steps=32, train_batch_size=4)
    (dataset,) = group.datasets
    assert set(dataset.buckets) == {(160, 96), (96, 160)}
    assert len(group) == 2 + 1  # 6 wide samples -> 2 batches, 4 tall samples -> 1 batch
    seen: list[str] = []
    for i in range(len(group)):
        batch = group[i]
        w, h = batch["bucket_reso"]
        assert batch["images"].shape == (len(batch["captions"]), 3, h, w)
        assert batch["images"].dtype == torch.float32
        assert batch["images"].min() >= -1 and batch["images"].max() <= 1
        assert batch["target_sizes_hw"].tolist() == [[h, w]] * len(batch["captions"])
        kinds = {Path(p).name[:4] for p in batch["image_paths"]}
        assert len(kinds) == 1  # wide and tall never share a batch
        seen += batch["image_paths"]
    assert len(seen) == 10 and all(seen.count(p) == 2 for p in set(seen))


def test_epoch_order_deterministic_from_seed(tmp_path: Path) -> None:
    root = tmp_path / "train"
    for i in range(8):
        make_image(root / "1_x" / f"{i}.png")

    def paths(seed: int, epoch: int) -> list[str]:
        group = group_for(root, seed=seed)
        group.set_epoch(epoch)
        return [group[i]["image_paths"][0] for i in range(len(group))]

    assert paths(1, 1) == paths(1, 1)
    assert paths(1, 1) != paths(1, 2)
    assert paths(1, 1) != paths(2, 1)


def test_sdxl_conditioning_sizes(tmp_path: Path) -> None:
    make_noise(tmp_path / "train" / "1_x" / "a.png", (100, 50))
    batch = group_for(tmp_path / "train", resolution="64")[0]
    assert batch["original_sizes_hw"].tolist() == [[50, 100]]
    assert batch["crop_top_lefts"].tolist() == [[0, 32]]  # resized to 128x64, 32 px cropped on the left
    assert batch["target_sizes_hw"].tolist() == [[64, 64]]
    assert batch["latents"] is None and batch["alpha_masks"] is None


def test_flip_mirrors_pixels_and_crop(tmp_path: Path) -> None:
    make_noise(tmp_path / "train" / "50_x" / "a.png", (96, 64))
    group = group_for(tmp_path / "train", flip_aug=True)
    batches = [group[i] for i in range(len(group))]
    flipped = [b for b in batches if b["flipped"].item()]
    plain = [b for b in batches if not b["flipped"].item()]
    assert flipped and plain
    assert torch.allclose(flipped[0]["images"], torch.flip(plain[0]["images"], dims=[3]))
    assert flipped[0]["crop_top_lefts"].tolist() == plain[0]["crop_top_lefts"].tolist()  # centred crop is symmetric


def test_alpha_mask_in_batch(tmp_path: Path) -> None:
    make_image(tmp_path / "train" / "1_x" / "a.png", (64, 64), mode="RGBA", color=(0, 0, 0, 0))
    batch = group_for(tmp_path / "train", alpha_mask=True)[0]
    assert batch["alpha_masks"].shape == (1, 64, 64) and batch["alpha_masks"].max() == 0
    assert batch["images"].min() == 1.0  # transparent pixels are white


def test_captions_in_batch(folder_dataset: Path) -> None:
    group = group_for(folder_dataset, resolution="64", caption_prefix="pre")
    captions = {c for i in range(len(group)) for c in group[i]["captions"]}
    assert "pre sks dog, tag0, outdoors" in captions and "pre cat" in captions


def test_bad_image_stops_before_training_or_is_skipped(folder_dataset: Path) -> None:
    (folder_dataset / "2_cat" / "broken.png").write_text("not a png")
    (spec,) = specs_from_args({"train_data_dir": str(folder_dataset), "resolution": "64"})
    with pytest.raises(DatasetError, match="broken.png.*save it again"):
        TrainDataset(spec, warn=lambda _: None)
    dataset = TrainDataset(spec, skip_bad_images=True, warn=lambda _: None)
    assert len(dataset.records) == 5


def test_dataloader_with_two_workers_matches_in_process(folder_dataset: Path) -> None:
    group = group_for(folder_dataset, shuffle_caption=True, flip_aug=True, train_batch_size=2)
    group.set_epoch(3)
    expected = [group[(3, i)] for i in range(len(group))]
    loader = make_dataloader(group, max_workers=2, persistent_workers=True)
    for epoch in (3, 4):
        group.set_epoch(epoch)
        got = list(loader)
        assert len(got) == len(group)
        if epoch == 3:
            for a, b in zip(got, expected, strict=True):
                assert a["captions"] == b["captions"] and a["image_paths"] == b["image_paths"]
                assert torch.equal(a["images"], b["images"])
        else:  # the new epoch reached the persistent workers
            assert [b["image_paths"] for b in got] == [group[(4, i)]["image_paths"] for i in range(len(group))]


def test_several_datasets_interleave(folder_dataset: Path, tmp_path: Path) -> None:
    make_image(tmp_path / "other" / "img.png")
    first = TrainDataset(specs_from_args({"train_data_dir": str(folder_dataset), "resolution": "64"})[0])
    second = TrainDataset(DatasetSpec((SubsetSpec(str(tmp_path / "other"), num_repeats=3),), (32, 32)))
    group = DatasetGroup([first, second], seed=0)
    assert len(group) == len(first) + 3
    sizes = {group[i]["bucket_reso"] for i in range(len(group))}
    assert sizes == {(64, 64), (32, 32)}


def test_metadata_for_lora_files(folder_dataset: Path) -> None:
    group = group_for(folder_dataset)
    frequency = tag_frequency(group)
    assert frequency["10_sks dog"]["sks dog"] == 3 and frequency["10_sks dog"]["tag1"] == 1
    assert frequency["2_cat"] == {"cat": 2}
    assert dataset_dirs(group) == {"10_sks dog": {"n_repeats": 10, "img_count": 3}, "2_cat": {"n_repeats": 2, "img_count": 2}}


def test_in_json_metadata_subset(tmp_path: Path) -> None:
    make_image(tmp_path / "imgs" / "a.png")
    make_image(tmp_path / "imgs" / "b.jpg")
    meta = {"a.png": {"caption": "a photo", "tags": "red"}, "b": {"tags": "blue"}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    group = group_for(tmp_path / "imgs", in_json=str(tmp_path / "meta.json"), dataset_repeats=2)
    captions = sorted(c for i in range(len(group)) for c in group[i]["captions"])
    assert captions == ["a photo,red", "a photo,red", "blue", "blue"]


def test_caption_variation_blocks_text_encoder_caching(folder_dataset: Path) -> None:
    assert group_for(folder_dataset).caption_variation() == []
    varying = group_for(folder_dataset, shuffle_caption=True).caption_variation()
    assert varying == ["10_sks dog: shuffle_caption", "2_cat: shuffle_caption"]


def test_duplicate_and_zero_repeat_subsets_are_ignored(folder_dataset: Path) -> None:
    folder = str(folder_dataset / "2_cat")
    spec = DatasetSpec(
        (SubsetSpec(folder, num_repeats=2), SubsetSpec(folder, num_repeats=5), SubsetSpec(str(folder_dataset / "10_sks dog"), num_repeats=0)),
        (64, 64),
    )
    warnings: list[str] = []
    dataset = TrainDataset(spec, warn=warnings.append)
    assert dataset.num_train_images == 4
    assert any("listed twice" in w for w in warnings) and any("num_repeats" in w for w in warnings)
