"""The ss_* keys that describe the datasets, in each dataset mode, as sd-scripts writes them (issue 14, item 14).

sd-scripts' train_network.py (commit 48d368fa) writes flat keys for one dataset from the folder
convention or `--in_json` (lines 1160-1198) and `ss_datasets` (a JSON list of datasets with their
subsets, lines 1067-1159) with `--dataset_config`. The expected values below are worked out by hand
for the small datasets made here.
"""

from __future__ import annotations

import json
from pathlib import Path

from backend.data.config import specs_from_args, specs_from_dataset_config
from backend.data.dataset import DatasetGroup, TrainDataset
from backend.data.summary import CONFIG_DATASET_KEYS, FLAT_DATASET_KEYS, dataset_metadata
from backend.options.dataset_config import load_dataset_config

from .helpers import make_image

BUCKETS = {"enable_bucket": True, "min_bucket_reso": 32, "max_bucket_reso": 128, "bucket_reso_steps": 32}


def group_of(specs) -> DatasetGroup:
    return DatasetGroup([TrainDataset(spec, seed=1, warn=lambda _: None) for spec in specs], seed=1)


def folders(root: Path) -> tuple[Path, Path]:
    """train/3_sks dog: two 64x64 and one 96x32 image with captions; train/2_cat: one 32x96 image and no
    caption (its class tokens stand in); reg/1_dog: one 64x64 image. Every image fits a bucket exactly."""
    for name, size in (("img0", (64, 64)), ("img1", (64, 64)), ("img2", (96, 32))):
        make_image(root / "train" / "3_sks dog" / f"{name}.png", size)
        (root / "train" / "3_sks dog" / f"{name}.txt").write_text(f"sks dog, {name}, Outdoors\nignored second line")
    make_image(root / "train" / "2_cat" / "c0.png", (32, 96))
    make_image(root / "reg" / "1_dog" / "r0.png", (64, 64))
    return root / "train", root / "reg"


def test_folder_convention_writes_sd_scripts_flat_keys(tmp_path: Path) -> None:
    train, reg = folders(tmp_path)
    args = {"train_data_dir": str(train), "reg_data_dir": str(reg), "resolution": "64", "caption_extension": ".txt",
            "train_batch_size": 2, "flip_aug": True, "keep_tokens": 1, **BUCKETS}
    metadata = dataset_metadata(group_of(specs_from_args(args)), dataset_config=False, total_batch_size=4)
    assert set(metadata) == set(FLAT_DATASET_KEYS)  # train_network.py:1183-1198
    assert {k: v for k, v in metadata.items() if not v.startswith("{")} == {
        "ss_batch_size_per_device": "2", "ss_total_batch_size": "4", "ss_resolution": "(64, 64)",
        "ss_color_aug": "False", "ss_flip_aug": "True", "ss_random_crop": "False", "ss_shuffle_caption": "False",
        "ss_enable_bucket": "True", "ss_bucket_no_upscale": "False", "ss_min_bucket_reso": "32",
        "ss_max_bucket_reso": "128", "ss_keep_tokens": "1",
    }
    assert json.loads(metadata["ss_dataset_dirs"]) == {"3_sks dog": {"n_repeats": 3, "img_count": 3},
                                                       "2_cat": {"n_repeats": 2, "img_count": 1}}
    assert json.loads(metadata["ss_reg_dataset_dirs"]) == {"1_dog": {"n_repeats": 1, "img_count": 1}}
    assert json.loads(metadata["ss_tag_frequency"]) == {
        "3_sks dog": {"sks dog": 3, "img0": 1, "img1": 1, "img2": 1, "outdoors": 3},  # first line, lower-cased
        "2_cat": {"cat": 1},
        "1_dog": {"dog": 1},
    }
    # Buckets in resolution order, counted with repeats (the reg image is repeated up to the 11 train
    # images); A1111 shows a LoRA's resolutions from this key.
    assert metadata["ss_bucket_info"] == (
        '{"buckets": {"0": {"resolution": [32, 96], "count": 2}, "1": {"resolution": [64, 64], "count": 17}, '
        '"2": {"resolution": [96, 32], "count": 3}}, "mean_img_ar_error": 0.0}'
    )


def test_in_json_writes_the_flat_keys_with_the_metadata_file_and_its_tags(tmp_path: Path) -> None:
    for name in ("img0", "img1"):
        make_image(tmp_path / "imgs" / f"{name}.png", (64, 64))
    meta = tmp_path / "meta_lat.json"
    meta.write_text(json.dumps({"img0": {"caption": "a woman", "tags": "long_hair, Shirt"},
                                "img1": {"caption": "a woman, smiling"}}))
    args = {"in_json": str(meta), "train_data_dir": str(tmp_path / "imgs"), "dataset_repeats": 2, "resolution": 64}
    metadata = dataset_metadata(group_of(specs_from_args(args)), dataset_config=False, total_batch_size=1)
    assert set(metadata) == set(FLAT_DATASET_KEYS)
    assert json.loads(metadata["ss_dataset_dirs"]) == {"meta_lat.json": {"n_repeats": 2, "img_count": 2}}
    assert metadata["ss_reg_dataset_dirs"] == "{}"
    # sd-scripts counts only the entries' tags for fine-tuning metadata (train_util.py:2369).
    assert json.loads(metadata["ss_tag_frequency"]) == {"meta_lat.json": {"long_hair": 1, "shirt": 1}}
    # Without enable_bucket the bucket keys are what sd-scripts' dataset holds then.
    assert (metadata["ss_enable_bucket"], metadata["ss_bucket_no_upscale"]) == ("False", "False")
    assert (metadata["ss_min_bucket_reso"], metadata["ss_max_bucket_reso"], metadata["ss_bucket_info"]) == (
        "None", "None", "null")


def test_dataset_config_writes_ss_datasets_per_dataset_and_subset(tmp_path: Path) -> None:
    train, reg = folders(tmp_path)
    sks, dog = train / "3_sks dog", reg / "1_dog"
    config = tmp_path / "data.toml"
    config.write_text(
        "[general]\nenable_bucket = true\nmin_bucket_reso = 40\nmax_bucket_reso = 128\nbucket_reso_steps = 32\n"
        "caption_extension = '.txt'\n"
        "[[datasets]]\nresolution = 64\nbatch_size = 2\n"
        f"[[datasets.subsets]]\nimage_dir = '{sks}'\nnum_repeats = 3\nclass_tokens = 'sks dog'\nflip_aug = true\n"
        f"[[datasets.subsets]]\nimage_dir = '{dog}'\nis_reg = true\nclass_tokens = 'dog'\n"
        "[[datasets]]\nresolution = 64\nenable_bucket = false\n"
        f"[[datasets.subsets]]\nimage_dir = '{sks}'\nkeep_tokens = 1\ncaption_prefix = 'photo'\n"
    )
    specs = specs_from_dataset_config(load_dataset_config(config), {"train_batch_size": 1}, 64)
    metadata = dataset_metadata(group_of(specs), dataset_config=True, total_batch_size=2)
    assert set(metadata) == set(CONFIG_DATASET_KEYS)  # train_network.py:1157-1159
    subset_defaults = {
        "color_aug": False, "random_crop": False, "shuffle_caption": False, "keep_tokens": 0,
        "keep_tokens_separator": "", "secondary_separator": None, "enable_wildcard": False, "caption_prefix": None,
        "caption_suffix": None, "resize_interpolation": None,
    }
    sks_tags = {"sks dog": 3, "img0": 1, "img1": 1, "img2": 1, "outdoors": 3}
    assert json.loads(metadata["ss_datasets"]) == [
        {
            "is_dreambooth": True, "batch_size_per_device": 2, "num_train_images": 9, "num_reg_images": 1,
            "resolution": [64, 64], "enable_bucket": True,
            "min_bucket_reso": 32, "max_bucket_reso": 128,  # 40 moved down to a multiple of the steps
            "tag_frequency": {"3_sks dog": sks_tags, "1_dog": {"dog": 1}},
            "bucket_info": {"buckets": {"0": {"resolution": [64, 64], "count": 15},
                                        "1": {"resolution": [96, 32], "count": 3}}, "mean_img_ar_error": 0.0},
            "resize_interpolation": None,
            "subsets": [
                {"img_count": 3, "num_repeats": 3, **subset_defaults, "flip_aug": True, "image_dir": "3_sks dog",
                 "class_tokens": "sks dog", "is_reg": False},
                {"img_count": 1, "num_repeats": 1, **subset_defaults, "flip_aug": False, "image_dir": "1_dog",
                 "class_tokens": "dog", "is_reg": True},
            ],
        },
        {
            "is_dreambooth": True, "batch_size_per_device": 1, "num_train_images": 3, "num_reg_images": 0,
            "resolution": [64, 64], "enable_bucket": False, "min_bucket_reso": None, "max_bucket_reso": None,
            "tag_frequency": {"3_sks dog": sks_tags}, "bucket_info": None, "resize_interpolation": None,
            "subsets": [
                {"img_count": 3, "num_repeats": 1, **subset_defaults, "flip_aug": False, "keep_tokens": 1,
                 "caption_prefix": "photo", "image_dir": "3_sks dog", "class_tokens": None, "is_reg": False},
            ],
        },
    ]
    # Merged over datasets: a folder's tags once; folders of training subsets, the second use renamed.
    assert json.loads(metadata["ss_tag_frequency"]) == {"3_sks dog": sks_tags, "1_dog": {"dog": 1}}
    assert json.loads(metadata["ss_dataset_dirs"]) == {"3_sks dog": {"n_repeats": 3, "img_count": 3},
                                                       "3_sks dog (2)": {"n_repeats": 1, "img_count": 3}}
