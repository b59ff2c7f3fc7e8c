import random
from pathlib import Path

from backend.data.captions import count_tags, process_caption, read_caption, read_subset_captions
from backend.data.discovery import list_images
from backend.data.specs import SubsetSpec

from .helpers import make_image

CAPTION = "sks, a, b, c, d, e, f, g"


def subset(**kw) -> SubsetSpec:
    return SubsetSpec(image_dir="x", **kw)


def run(caption: str, spec: SubsetSpec, epoch: int = 1, seed: int = 0) -> str:
    return process_caption(caption, spec, epoch, random.Random(seed))


def test_read_caption_first_line_stripped_and_bom(tmp_path: Path) -> None:
    image = make_image(tmp_path / "a.png")
    (tmp_path / "a.txt").write_bytes("\ufeff  first, line  \nsecond\n".encode())
    assert read_caption(image, ".txt") == "first, line"
    assert read_caption(image, ".txt", enable_wildcard=True) == "first, line\nsecond"
    assert read_caption(image, ".caption") is None


def test_missing_captions_use_class_tokens_and_txt_hint(tmp_path: Path) -> None:
    for i in range(3):
        make_image(tmp_path / f"{i}.png")
        (tmp_path / f"{i}.txt").write_text(f"tag{i}")
    spec = SubsetSpec(image_dir=str(tmp_path), class_tokens="sks dog")  # default .caption
    scan = read_subset_captions(spec, list_images(tmp_path))
    assert scan.captions == ["sks dog"] * 3
    assert len(scan.missing) == 3
    hint = scan.hint(spec)
    assert hint is not None and "'.txt'" in hint and "--caption_extension .txt" in hint


def test_caption_hint_the_other_way(tmp_path: Path) -> None:
    make_image(tmp_path / "a.png")
    (tmp_path / "a.caption").write_text("x")
    spec = SubsetSpec(image_dir=str(tmp_path), caption_extension=".txt")
    assert "--caption_extension .caption" in read_subset_captions(spec, list_images(tmp_path)).hint(spec)


def test_no_processing_returns_first_line() -> None:
    assert run("a, b\nc", subset()) == "a, b"


def test_shuffle_keeps_head_tokens() -> None:
    spec = subset(shuffle_caption=True, keep_tokens=1)
    results = {run(CAPTION, spec, seed=s) for s in range(20)}
    assert len(results) > 1
    for result in results:
        tokens = result.split(", ")
        assert tokens[0] == "sks"
        assert sorted(tokens[1:]) == list("abcdefg")


def test_keep_tokens_separator_fixed_prefix_and_suffix() -> None:
    spec = subset(shuffle_caption=True, keep_tokens_separator="|||", keep_tokens=5)
    for seed in range(10):
        tokens = run("sks, girl ||| a, b, c, d ||| masterpiece", spec, seed=seed).split(", ")
        assert tokens[:2] == ["sks", "girl"] and tokens[-1] == "masterpiece"
        assert sorted(tokens[2:-1]) == ["a", "b", "c", "d"]


def test_custom_separator_and_join() -> None:
    spec = subset(shuffle_caption=True, caption_separator=";", keep_tokens=1)
    tokens = run("sks; a b; c d", spec).split(", ")
    assert tokens[0] == "sks" and sorted(tokens[1:]) == ["a b", "c d"]


def test_secondary_separator_groups_words() -> None:
    spec = subset(shuffle_caption=True, secondary_separator=";;;")
    result = run("a;;;b, c", spec)
    assert "a,b" in result


def test_same_seed_same_caption_other_seed_other() -> None:
    spec = subset(shuffle_caption=True, caption_tag_dropout_rate=0.3)
    assert run(CAPTION, spec, seed=5) == run(CAPTION, spec, seed=5)
    assert len({run(CAPTION, spec, seed=s) for s in range(10)}) > 1


def test_caption_dropout_rate_deterministic() -> None:
    spec = subset(caption_dropout_rate=0.5)
    first = [run("a, b", spec, seed=s) for s in range(200)]
    assert first == [run("a, b", spec, seed=s) for s in range(200)]
    dropped = first.count("")
    assert 60 < dropped < 140
    assert set(first) == {"", "a, b"}


def test_tag_dropout_never_drops_kept_tokens() -> None:
    spec = subset(caption_tag_dropout_rate=0.9, keep_tokens=1)
    for seed in range(20):
        assert run(CAPTION, spec, seed=seed).split(", ")[0] == "sks"


def test_dropout_every_n_epochs_counts_from_one() -> None:
    spec = subset(caption_dropout_every_n_epochs=2)
    assert [run("a", spec, epoch=e) for e in (1, 2, 3, 4)] == ["a", "", "a", ""]


def test_prefix_suffix() -> None:
    assert run("a, b", subset(caption_prefix="sks", caption_suffix="best")) == "sks a, b best"


def test_wildcards() -> None:
    spec = subset(enable_wildcard=True)
    results = {run("a {red|blue} {{x}}", spec, seed=s) for s in range(20)}
    assert results == {"a red {x}", "a blue {x}"}


def test_count_tags_like_sd_scripts() -> None:
    assert count_tags(["Sks, dog, ", "sks,cat"]) == {"sks": 2, "dog": 1, "cat": 1}
