from pathlib import Path

import pytest

from backend.data import DatasetError, specs_from_args
from backend.data.discovery import list_images, parse_folder_name, subsets_from_folders

from .helpers import make_image


def test_folder_convention(folder_dataset: Path) -> None:
    subsets = subsets_from_folders(folder_dataset)
    assert [(Path(s.image_dir).name, s.num_repeats, s.class_tokens, s.is_reg) for s in subsets] == [
        ("10_sks dog", 10, "sks dog", False),
        ("2_cat", 2, "cat", False),
    ]


def test_parse_folder_name_keeps_underscores_in_tokens() -> None:
    assert parse_folder_name("5_my_token") == (5, "my_token")
    assert parse_folder_name("images") is None


def test_list_images_case_insensitive_sorted(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpeg", "c.WebP", "d.bmp"):
        make_image(tmp_path / name, format={"PNG": "PNG", "jpeg": "JPEG", "WebP": "WEBP", "bmp": "BMP"}[name.split(".")[1]])
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "anim.gif").write_bytes(b"GIF89a")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpeg", "b.PNG", "c.WebP", "d.bmp"]


def test_folder_without_prefix_is_skipped_with_warning(folder_dataset: Path) -> None:
    make_image(folder_dataset / "extras" / "x.png")
    warnings: list[str] = []
    subsets = subsets_from_folders(folder_dataset, warn=warnings.append)
    assert len(subsets) == 2
    assert any("'extras'" in w and "10_extras" in w for w in warnings)


def test_images_directly_in_train_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    for i in range(12):
        make_image(tmp_path / "train" / f"{i}.png")
    with pytest.raises(DatasetError) as err:
        subsets_from_folders(tmp_path / "train")
    message = str(err.value)
    assert "must be the parent of folders named like '10_name'" in message
    assert "found 12 image(s) directly in it" in message
    assert "10_<token>" in message


def test_unprefixed_folders_only_error_names_them(tmp_path: Path) -> None:
    make_image(tmp_path / "train" / "dog" / "a.png")
    with pytest.raises(DatasetError, match="'dog'.*10_dog"):
        subsets_from_folders(tmp_path / "train")


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        subsets_from_folders(tmp_path / "nope")


def test_reg_folders(folder_dataset: Path, tmp_path: Path) -> None:
    make_image(tmp_path / "reg" / "1_dog" / "r.png")
    subsets = subsets_from_folders(folder_dataset, tmp_path / "reg")
    assert [s.is_reg for s in subsets] == [False, False, True]


def test_specs_from_args_uses_declared_defaults_and_legacy_alias(folder_dataset: Path) -> None:
    (spec,) = specs_from_args({"train_data_dir": str(folder_dataset), "caption_extention": ".txt"}, default_resolution=512)
    assert spec.resolution == (512, 512)
    assert spec.batch_size == 1 and spec.min_bucket_reso == 256 and spec.bucket_reso_steps == 64
    assert all(s.caption_extension == ".txt" for s in spec.subsets)
    (spec,) = specs_from_args({"train_data_dir": str(folder_dataset), "resolution": "768,512"})
    assert spec.resolution == (768, 512)
    assert spec.subsets[0].caption_extension == ".caption"


def test_specs_from_args_requires_resolution_and_data(folder_dataset: Path) -> None:
    with pytest.raises(DatasetError, match="resolution"):
        specs_from_args({"train_data_dir": str(folder_dataset)})
    with pytest.raises(DatasetError, match="train_data_dir"):
        specs_from_args({"resolution": "512"})
