import pytest

from backend.data import (
    DatasetError,
    DatasetSpec,
    SubsetSpec,
    make_bucket_resolutions,
    verify_bucket_reso_steps,
)
from backend.data.buckets import BucketSelector


def spec(**kw) -> DatasetSpec:
    kw.setdefault("resolution", (512, 512))
    return DatasetSpec((SubsetSpec("x"),), **kw)


def test_predefined_resolutions_like_sd_scripts() -> None:
    resos = make_bucket_resolutions((512, 512), 256, 1024, 64)
    assert (512, 512) in resos and (256, 1024) in resos and (1024, 256) in resos
    assert (640, 384) in resos and (384, 640) in resos
    assert all(w * h <= 512 * 512 and w % 64 == 0 and h % 64 == 0 for w, h in resos)


@pytest.mark.parametrize(
    ("size", "bucket", "resized"),
    [
        ((1000, 1000), (512, 512), (512, 512)),
        ((1600, 900), (640, 384), (683, 384)),  # 16:9 -> nearest ratio 5:3, cover then crop width
        ((900, 1600), (384, 640), (384, 683)),
        ((300, 200), (640, 384), (640, 427)),  # small images are enlarged to cover the bucket
        ((2000, 500), (1024, 256), (1024, 256)),
    ],
)
def test_select_bucket(size, bucket, resized) -> None:
    choice = BucketSelector(spec(enable_bucket=True)).select(*size)
    assert choice.reso == bucket and choice.resized_size == resized


def test_no_upscale_buckets_follow_image_size() -> None:
    selector = BucketSelector(spec(enable_bucket=True, bucket_no_upscale=True), warn=lambda _: None)
    small = selector.select(300, 200)
    assert small.reso == (256, 192) and small.resized_size == (300, 200)  # cropped, never enlarged
    large = selector.select(2000, 1000)
    assert large.reso[0] * large.reso[1] <= 512 * 512 and large.reso == (640, 320)
    with pytest.raises(DatasetError, match="bucket_no_upscale"):
        selector.select(40, 300)


def test_without_buckets_everything_goes_to_resolution() -> None:
    selector = BucketSelector(spec(resolution=(512, 768)))
    assert selector.select(1000, 1000) == selector.select(1000, 1000)
    choice = selector.select(1000, 1000)
    assert choice.reso == (512, 768) and choice.resized_size == (768, 768)


def test_min_max_checks() -> None:
    with pytest.raises(DatasetError, match="max_bucket_reso"):
        BucketSelector(spec(resolution=(1024, 1024), enable_bucket=True, max_bucket_reso=768))
    warnings: list[str] = []
    BucketSelector(spec(enable_bucket=True, min_bucket_reso=300), warn=warnings.append)
    assert "using 256" in warnings[0]


def test_a_min_bucket_reso_below_the_step_rounds_up_not_to_zero() -> None:
    warnings: list[str] = []
    selector = BucketSelector(spec(resolution=(128, 64), enable_bucket=True, min_bucket_reso=32,
                                   max_bucket_reso=128), warn=warnings.append)  # fmt: skip
    assert "using 64" in warnings[0]
    assert selector.select(128, 64).reso == (128, 64)


def test_verify_steps() -> None:
    verify_bucket_reso_steps(spec(enable_bucket=True), 64)
    with pytest.raises(DatasetError, match="divisible by 64"):
        verify_bucket_reso_steps(spec(enable_bucket=True, bucket_reso_steps=32), 64)
