"""Global batches split among processes: each process loads exactly its share of what one process with
the whole global batch loads, augmentation and caption draws included."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend.data import DatasetGroup, TrainDataset, specs_from_args
from backend.data.shares import rank_share

from .helpers import make_noise

SEED = 3
RANDOM_OPTIONS = {  # every per-sample draw the dataset makes
    "flip_aug": True, "color_aug": True, "random_crop": True, "shuffle_caption": True,
    "caption_tag_dropout_rate": 0.3, "caption_dropout_rate": 0.2, "caption_extension": ".txt",
}


def sharded(root: Path, batch_size: int, processes: int, rank: int) -> DatasetGroup:
    args = {"train_data_dir": str(root), "resolution": "64", "enable_bucket": True, "min_bucket_reso": 32,
            "max_bucket_reso": 128, "bucket_reso_steps": 32, "train_batch_size": batch_size, **RANDOM_OPTIONS}
    datasets = [TrainDataset(s, seed=SEED, warn=lambda _: None, processes=processes) for s in specs_from_args(args)]
    return DatasetGroup(datasets, seed=SEED, rank=rank)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sharding") / "train"
    for i in range(5):  # one bucket: 10 samples, global batches of 6 and 4
        make_noise(root / "2_x" / f"wide{i}.png", (96, 72), seed=i)
        (root / "2_x" / f"wide{i}.txt").write_text(f"a, b{i}, c, d, e")
    make_noise(root / "2_x" / "tall.png", (48, 96), seed=9)  # its own bucket: a global batch of 2
    (root / "2_x" / "tall.txt").write_text("f, g, h")
    return root


@pytest.mark.parametrize("processes", [2, 3])
def test_processes_load_their_share_of_one_processs_batches(images: Path, processes: int) -> None:
    one = sharded(images, 6, 1, 0)
    ranks = [sharded(images, 6 // processes, processes, rank) for rank in range(processes)]
    assert [len(group) for group in ranks] == [len(one)] * processes == [3] * processes
    for epoch in (1, 2):
        for index in range(len(one)):
            whole = one[(epoch, index)]
            size = len(whole["captions"])
            parts = [group[(epoch, index)] for group in ranks]
            real = [part for part in parts if part["share_weight"] > 0]
            for key in ("captions", "image_paths", "sample_indices"):
                assert [x for part in real for x in part[key]] == whole[key], key
            for key in ("images", "flipped", "crop_top_lefts", "original_sizes_hw"):
                assert torch.equal(torch.cat([part[key] for part in real]), whole[key]), key
            # The processes' weighted mean of any per-sample value (the loss) is the whole batch's mean.
            value = whole["images"].mean(dim=(1, 2, 3))
            weighted = sum(part["share_weight"] * part["images"].mean(dim=(1, 2, 3)).mean() for part in parts)
            assert weighted / processes == pytest.approx(value.mean().item(), abs=1e-6)
            # A process without a sample of its own runs the batch's first one, weighted 0.
            for part in parts:
                if part["share_weight"] == 0:
                    assert part["sample_indices"] == whole["sample_indices"][:1] and size < processes
    draws = {(c, bool(f)) for i in range(len(one)) for c, f in zip(one[i]["captions"], one[i]["flipped"], strict=True)}
    assert len(draws) > 5, "the draws vary between samples"


def test_sample_indices_number_the_epochs_samples(images: Path) -> None:
    group = sharded(images, 4, 1, 0)
    indices = [i for b in range(len(group)) for i in group[b]["sample_indices"]]
    assert indices == list(range(12))


@pytest.mark.parametrize("size", range(1, 8))
@pytest.mark.parametrize("processes", [1, 2, 3, 4])
def test_shares_cover_the_batch_once_and_weigh_it_evenly(size: int, processes: int) -> None:
    shares = [rank_share(size, rank, processes) for rank in range(processes)]
    covered = [p for share in shares if share.weight > 0 for p in share.positions]
    assert covered == list(range(size))
    assert max(len(s.positions) for s in shares) <= -(-size // processes)  # never more than batch size
    values = torch.rand(size, generator=torch.Generator().manual_seed(size))  # per-sample losses
    processes_mean = sum(s.weight * values[s.start : s.stop].mean() for s in shares if s.weight) / processes
    assert processes_mean == pytest.approx(values.mean().item())
    assert sum(s.weight for s in shares) == pytest.approx(processes)  # equal to N: the mean of N equal means
