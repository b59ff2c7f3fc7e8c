"""--dataset_config: sd-scripts' structure, fallbacks, and errors that say where and what to do."""

from __future__ import annotations

import json

import pytest

from backend.options import OptionError, load_dataset_config, subset_kinds_for, validate_dataset_config

VALID = """\
[general]
shuffle_caption = true
caption_extension = ".txt"
keep_tokens = 1
batch_size = 2

[[datasets]]
resolution = [768, 512]
batch_size = 4
flip_aug = true

  [[datasets.subsets]]
  image_dir = "/img/dog"
  num_repeats = 10
  keep_tokens = 2

  [[datasets.subsets]]
  image_dir = "/img/reg"
  is_reg = true
  class_tokens = "dog"

[[datasets]]
resolution = 512

  [[datasets.subsets]]
  metadata_file = "/meta.json"
  image_dir = "/img/ft"
"""


def errors(write, text: str, name: str = "data.toml", **kwargs) -> list[str]:
    path = write(name, text)
    with pytest.raises(OptionError) as caught:
        load_dataset_config(path, **kwargs)
    return [message.replace(f"{path}", name) for message in caught.value.messages]


def test_valid_config_resolves_fallbacks(write):
    config = load_dataset_config(write("data.toml", VALID))
    dreambooth, fine_tuning = config.datasets
    assert dreambooth.kind == "dreambooth" and fine_tuning.kind == "fine_tuning"
    assert dreambooth.params == {"resolution": (768, 512), "batch_size": 4}
    assert fine_tuning.params == {"resolution": (512, 512), "batch_size": 2}  # from [general]
    dog, reg = dreambooth.subsets
    assert dog.params == {
        "num_repeats": 10, "shuffle_caption": True, "keep_tokens": 2, "flip_aug": True,
        "caption_extension": ".txt", "image_dir": "/img/dog",
    }  # fmt: skip
    assert (
        reg.params["keep_tokens"] == 1
        and reg.params["is_reg"] is True
        and reg.params["class_tokens"] == "dog"
    )
    (ft,) = fine_tuning.subsets
    # caption_extension is a DreamBooth/ControlNet key: [general] does not hand it to fine-tuning subsets.
    assert ft.params == {
        "shuffle_caption": True,
        "keep_tokens": 1,
        "image_dir": "/img/ft",
        "metadata_file": "/meta.json",
    }


def test_json_variant(write):
    data = {
        "general": {"enable_bucket": True},
        "datasets": [{"resolution": 1024, "subsets": [{"image_dir": "/img", "num_repeats": 2}]}],
    }
    config = load_dataset_config(write("data.json", json.dumps(data)))
    assert config.datasets[0].params == {"resolution": (1024, 1024), "enable_bucket": True}
    data["datasets"][0]["subsets"][0]["num_repeats"] = "2"
    assert errors(write, json.dumps(data), "data.json") == [
        'data.json: datasets[0].subsets[0]: "num_repeats" expects an integer, got "2" (a string); remove the quotes'
    ]
    assert errors(write, "{", "bad.json")[0].startswith("bad.json:1: invalid JSON:")


def test_dataset_key_in_a_subset(write):
    text = "[[datasets]]\n  [[datasets.subsets]]\n  image_dir = '/a'\n  batch_size = 2\n"
    assert errors(write, text) == [
        'data.toml:4: datasets[0].subsets[0]: "batch_size" belongs to a [[datasets]] table or [general], '
        "not a subset; move it up"
    ]


def test_subset_key_in_general_or_dataset(write):
    text = "[general]\nimage_dir = '/a'\n[[datasets]]\nis_reg = true\n  [[datasets.subsets]]\n  image_dir = '/a'\n"
    assert errors(write, text) == [
        'data.toml:2: [general]: "image_dir" belongs to a [[datasets.subsets]] table, not [general]; '
        "move it into each subset",
        'data.toml:4: datasets[0]: "is_reg" belongs to a [[datasets.subsets]] table, not a [[datasets]] table; '
        "move it into each subset",
    ]


def test_typo_suggests_the_nearest_key(write):
    text = "[[datasets]]\n  [[datasets.subsets]]\n  image_dir = '/a'\n  num_repeat = 3\n"
    assert errors(write, text) == [
        'data.toml:4: datasets[0].subsets[0]: unknown key "num_repeat" (did you mean "num_repeats"?)'
    ]


def test_command_line_names_and_training_options(write):
    text = "[general]\ntrain_batch_size = 2\nlearning_rate = 1e-4\n[[datasets]]\n  [[datasets.subsets]]\n  image_dir = '/a'\n"
    assert errors(write, text) == [
        'data.toml:2: [general]: "train_batch_size" is the command-line name; in a dataset config write batch_size',
        'data.toml:3: [general]: "learning_rate" is a training option, not a dataset key; '
        "set it in the --config_file TOML or on the command line",
    ]


def test_top_level_problems(write):
    assert errors(write, "batch_size = 1\n[[dataset]]\n") == [
        'data.toml:1: top level: "batch_size" must be inside [general] or a [[datasets]] table, not at the top level',
        'data.toml:2: top level: unknown top-level key "dataset" (did you mean "datasets"?); '
        "the file holds [general] and [[datasets]] tables",
        "data.toml: top level: no [[datasets]] table; add one with a [[datasets.subsets]] that sets image_dir",
    ]
    assert errors(write, "[datasets]\nbatch_size = 1\n") == [
        "data.toml:1: top level: datasets must be an array of tables: write [[datasets]] (double brackets)"
    ]


def test_missing_image_dir_and_empty_dataset(write):
    text = "[[datasets]]\n  [[datasets.subsets]]\n  num_repeats = 1\n[[datasets]]\nbatch_size = 1\n"
    assert errors(write, text) == [
        'data.toml:2: datasets[0].subsets[0]: missing "image_dir" (folder of training images), '
        "required in a DreamBooth subset (its subsets have no metadata_file)",
        "data.toml:4: datasets[1]: no [[datasets.subsets]]; add one that sets image_dir (or metadata_file)",
    ]


def test_dreambooth_and_fine_tuning_subsets_are_not_mixed(write):
    text = "[[datasets]]\n  [[datasets.subsets]]\n  image_dir = '/a'\n  [[datasets.subsets]]\n  metadata_file = '/m.json'\n"
    assert errors(write, text) == [
        "data.toml:1: datasets[0]: DreamBooth subsets (no metadata_file: subsets [0]) and fine-tuning subsets "
        "(metadata_file: subsets [1]) cannot be mixed in one dataset; split them into two [[datasets]] tables"
    ]


def test_key_of_another_subset_kind(write):
    text = "[[datasets]]\n  [[datasets.subsets]]\n  metadata_file = '/m.json'\n  is_reg = true\n"
    assert errors(write, text) == [
        'data.toml:4: datasets[0].subsets[0]: "is_reg" applies only to DreamBooth subsets; '
        "this subset is fine-tuning (its subsets set metadata_file)"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("resolution = '512'", '"resolution" expects an integer or [width, height], got "512" (a string); remove the quotes'),
        ("resolution = [512, 512, 3]", '"resolution" expects an integer or [width, height], got [512, 512, 3] (a list)'),
        ("resolution = 0", '"resolution" must be >= 1, got 0 (an image side needs at least 1 pixel)'),
        ("batch_size = 1.5", '"batch_size" expects an integer, got 1.5 (a decimal number)'),
        ("enable_bucket = 'true'", '"enable_bucket" expects true or false, got "true" (a string); remove the quotes'),
        ("caption_dropout_rate = 2", '"caption_dropout_rate" must be between 0 and 1, got 2.0 (a probability: sd-scripts compares random() < rate, so above 1 every caption is dropped and below 0 none is, silently)'),
        ("resize_interpolation = 'Lanczos'", '"resize_interpolation" must be one of lanczos, nearest, bilinear, linear, bicubic, cubic, area, box; got "Lanczos" (did you mean "lanczos"?)'),
        ("face_crop_aug_range = [2.0]", '"face_crop_aug_range" expects a list of two numbers [low, high], got [2.0] (a list)'),
        ("custom_attributes = 1", '"custom_attributes" expects a table (key = value pairs), got 1 (an integer)'),
    ],
)  # fmt: skip
def test_wrong_types(write, line: str, message: str):
    text = f"[[datasets]]\n{line}\n  [[datasets.subsets]]\n  image_dir = '/a'\n"
    assert errors(write, text) == [f"data.toml:2: datasets[0]: {message}"]


def test_fine_tune_accepts_only_fine_tuning_subsets(write):
    text = "[general]\nclass_tokens = 'dog'\n[[datasets]]\n  [[datasets.subsets]]\n  image_dir = '/a'\n"
    assert errors(write, text, kinds=subset_kinds_for("fine_tune")) == [
        'data.toml:2: [general]: "class_tokens" applies only to DreamBooth subsets, which are not accepted here '
        "(accepted: fine-tuning)",
        'data.toml:4: datasets[0].subsets[0]: missing "metadata_file" (metadata JSON with captions, written by '
        "the captioning/merge tools), required in a fine-tuning subset (only fine-tuning datasets are accepted here)",
    ]


def test_controlnet_subsets(write):
    text = "[[datasets]]\n  [[datasets.subsets]]\n  image_dir = '/a'\n  conditioning_data_dir = '/c'\n"
    config = load_dataset_config(
        write("data.toml", text), subset_kinds_for("train_network", masked_loss=True)
    )
    assert config.datasets[0].kind == "controlnet"
    assert config.datasets[0].subsets[0].params == {"image_dir": "/a", "conditioning_data_dir": "/c"}
    # Without --masked_loss, sd-scripts' LoRA trainer reads such a subset as DreamBooth.
    assert errors(write, text, kinds=subset_kinds_for("train_network")) == [
        'data.toml:4: datasets[0].subsets[0]: "conditioning_data_dir" (loss masks) is read only with --masked_loss, '
        "as in sd-scripts: add masked_loss = true to the training options, or remove the key"
    ]
    mixed = text + "  [[datasets.subsets]]\n  image_dir = '/b'\n"
    assert errors(write, mixed, kinds=subset_kinds_for("train_network", masked_loss=True)) == [
        'data.toml:4: datasets[0].subsets[0]: "conditioning_data_dir" must be set in every subset of the dataset or '
        "in none (as in sd-scripts, a dataset is masked only when all its subsets are); put the subsets without "
        "masks in a [[datasets]] table of their own"
    ]


def test_validate_in_memory_data():
    config = validate_dataset_config({"datasets": [{"subsets": [{"image_dir": "/a"}]}]})
    assert config.datasets[0].subsets[0].params == {"image_dir": "/a"}
    with pytest.raises(OptionError, match=r'dataset config: datasets\[0\]: "batch_size" expects an integer'):
        validate_dataset_config({"datasets": [{"batch_size": "1", "subsets": [{"image_dir": "/a"}]}]})


def test_missing_file(tmp_path):
    with pytest.raises(OptionError, match="dataset config not found"):
        load_dataset_config(tmp_path / "nope.toml")
