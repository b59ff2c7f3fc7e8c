import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.data import DatasetError, check_images
from backend.data.images import color_aug, fit_to_bucket, load_image, probe_image, to_tensor

from .helpers import make_image, make_noise


def test_exif_orientation_applied_to_size_and_pixels(tmp_path: Path) -> None:
    arr = np.zeros((40, 80, 3), np.uint8)
    arr[:, :40] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "phone.jpg"
    Image.fromarray(arr).save(path, exif=exif.tobytes(), quality=95)
    assert probe_image(path).size == (40, 80)
    rgb = load_image(path).rgb
    assert rgb.shape == (80, 40, 3)
    assert rgb[5, 20, 0] > 200 and rgb[75, 20, 0] < 60  # red is now on top


def test_rgba_flattened_on_white_and_alpha_mask(tmp_path: Path) -> None:
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[:, :4] = (0, 0, 0, 255)  # opaque black left half, transparent right half
    path = tmp_path / "a.png"
    Image.fromarray(arr, "RGBA").save(path)
    loaded = load_image(path)
    assert loaded.alpha is None
    assert loaded.rgb[0, 0].tolist() == [0, 0, 0] and loaded.rgb[0, 7].tolist() == [255, 255, 255]
    masked = load_image(path, with_alpha=True)
    assert masked.alpha[0, 0] == 255 and masked.alpha[0, 7] == 0
    assert load_image(make_image(tmp_path / "b.png"), with_alpha=True).alpha.min() == 255


def test_palette_with_transparency_and_la(tmp_path: Path) -> None:
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    assert load_image(tmp_path / "p.png").rgb[0, 0].tolist() == [255, 255, 255]
    Image.new("LA", (4, 4), (10, 0)).save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").rgb[0, 0].tolist() == [255, 255, 255]


def test_grayscale_and_16_bit(tmp_path: Path) -> None:
    Image.new("L", (4, 4), 100).save(tmp_path / "g.png")
    assert load_image(tmp_path / "g.png").rgb[0, 0].tolist() == [100, 100, 100]
    Image.fromarray(np.full((4, 4), 32896, np.uint16)).save(tmp_path / "g16.png")  # 128 * 257
    assert load_image(tmp_path / "g16.png").rgb[0, 0].tolist() == [128, 128, 128]


def test_bad_files_are_listed_with_a_fix(tmp_path: Path) -> None:
    good = make_noise(tmp_path / "good.png", (64, 64))
    data = good.read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("this is not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    jpg = make_noise(tmp_path / "full.jpg", (64, 64))
    (tmp_path / "cut.jpg").write_bytes(jpg.read_bytes()[:-400])
    paths = sorted(tmp_path.iterdir())
    problems = {Path(p.path).name: p for p in check_images(paths)}
    assert set(problems) == {"truncated.png", "text.png", "empty.jpg", "cut.jpg"}
    assert "truncated" in problems["truncated.png"].problem
    assert "not an image" in problems["text.png"].problem
    assert "empty" in problems["empty.jpg"].problem
    assert "save it again" in problems["cut.jpg"].fix


def test_load_error_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_text("nope")
    with pytest.raises(DatasetError, match="bad.png"):
        load_image(tmp_path / "bad.png")


def test_fit_to_bucket_center_and_random_crop(tmp_path: Path) -> None:
    image = load_image(make_noise(tmp_path / "n.png", (100, 50)))
    fitted = fit_to_bucket(image, (64, 64), (128, 64), False, None, None)
    assert fitted.rgb.shape == (64, 64, 3) and fitted.crop_ltrb == (32, 0, 96, 64)
    lefts = {fit_to_bucket(image, (64, 64), (128, 64), True, random.Random(s), None).crop_ltrb[0] for s in range(20)}
    assert len(lefts) > 1 and all(0 <= x <= 64 for x in lefts)


def test_color_aug_changes_some_images_only_slightly(tmp_path: Path) -> None:
    rgb = load_image(make_noise(tmp_path / "n.png", (32, 32))).rgb
    outputs = [color_aug(rgb, random.Random(s)) for s in range(30)]
    changed = [o for o in outputs if not np.array_equal(o, rgb)]
    assert 0 < len(changed) < 30
    assert all(o.shape == rgb.shape and o.dtype == np.uint8 for o in outputs)


def test_to_tensor_range() -> None:
    t = to_tensor(np.array([[[0, 255, 127]]], np.uint8))
    assert t.shape == (3, 1, 1) and t.min() == -1.0 and t.max() == 1.0
