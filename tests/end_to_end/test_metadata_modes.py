"""LoRA metadata in the two other dataset modes, end to end (issue 14, item 14; the folder convention is
checked on the main run in test_train_network.py): the keys are sd-scripts' (sd_scripts_metadata.py) and
the dataset keys hold this run's datasets."""

from __future__ import annotations

import json

from safetensors import safe_open

from .helpers import make_images, run_trainer
from .sd_scripts_metadata import lora_keys, ss_keys


def metadata_of(path) -> dict[str, str]:
    with safe_open(str(path), "pt") as file:
        return file.metadata()


def common_flags(tiny, out):
    model = tiny.get("sd15", single_file=True)  # a file: sd-scripts also writes its hashes
    return ["--pretrained_model_name_or_path", str(model.path), "--tokenizer_cache_dir", str(model.tokenizer_cache_dir),
            "--output_dir", str(out), "--output_name", "tiny", "--max_data_loader_n_workers", "0", "--seed", "7",
            "--max_train_steps", "2", "--network_dim", "4"]


def test_dataset_config_run_writes_ss_datasets(tiny, tmp_path):
    images = tmp_path / "photos"
    make_images(images, 2, sizes=[(64, 64), (128, 64)], caption="sks dog")
    config = tmp_path / "data.toml"
    config.write_text(
        "[general]\ncaption_extension = '.txt'\n"
        f"[[datasets]]\nresolution = 64\nenable_bucket = true\nmin_bucket_reso = 64\nmax_bucket_reso = 128\n"
        f"[[datasets.subsets]]\nimage_dir = '{images}'\nnum_repeats = 2\nclass_tokens = 'sks'\n"
    )
    result = run_trainer("train_network", *common_flags(tiny, tmp_path / "out"), "--dataset_config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = metadata_of(tmp_path / "out" / "tiny.safetensors")
    assert ss_keys(metadata) == lora_keys(dataset_config=True, network_args=False, model_file=True)
    (dataset,) = json.loads(metadata["ss_datasets"])  # was "[]"
    assert dataset["is_dreambooth"] and dataset["num_train_images"] == 4 and dataset["resolution"] == [64, 64]
    assert dataset["bucket_info"]["buckets"] == {"0": {"resolution": [64, 64], "count": 4}}
    assert [(s["image_dir"], s["img_count"], s["num_repeats"]) for s in dataset["subsets"]] == [("photos", 2, 2)]
    assert json.loads(metadata["ss_dataset_dirs"]) == {"photos": {"n_repeats": 2, "img_count": 2}}
    assert json.loads(metadata["ss_tag_frequency"])["photos"]["sks dog"] == 2


def test_in_json_run_writes_the_flat_keys_for_the_metadata_file(tiny, tmp_path):
    images = tmp_path / "imgs"
    make_images(images, 2, caption=None)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"img0": {"caption": "a dog", "tags": "dog, grass"}, "img1": {"caption": "a dog"}}))
    result = run_trainer("train_network", *common_flags(tiny, tmp_path / "out"), "--in_json", str(meta),
                         "--train_data_dir", str(images), "--resolution", "64", "--network_args", "conv_dim=2")
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = metadata_of(tmp_path / "out" / "tiny.safetensors")
    assert ss_keys(metadata) == lora_keys(dataset_config=False, network_args=True, model_file=True)
    assert json.loads(metadata["ss_dataset_dirs"]) == {"meta.json": {"n_repeats": 1, "img_count": 2}}
    assert json.loads(metadata["ss_tag_frequency"]) == {"meta.json": {"dog": 1, "grass": 1}}
    assert json.loads(metadata["ss_network_args"]) == {"conv_dim": "2", "dropout": None}  # as sd-scripts records it
    assert metadata["ss_resolution"] == "(64, 64)" and metadata["ss_total_batch_size"] == "1"
