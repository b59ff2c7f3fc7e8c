"""The three dataset layouts finetrainers reads, and every problem reported before decoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.data.video.errors import VideoDataError
from backend.data.video.sources import VideoRecord, load_records


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_two_line_lists_with_finetrainers_names_and_id_token(tmp_path: Path) -> None:
    _touch(tmp_path / "videos" / "a.mp4", tmp_path / "videos" / "b.webm")
    (tmp_path / "prompt.txt").write_text("a cat\na dog\n\n")  # trailing blank line is not an entry
    (tmp_path / "videos.txt").write_text("videos/a.mp4\nvideos/b.webm\n")
    records = load_records(tmp_path, id_token="  BW_STYLE ")
    assert records == [
        VideoRecord(str(tmp_path / "videos" / "a.mp4"), "BW_STYLE a cat"),
        VideoRecord(str(tmp_path / "videos" / "b.webm"), "BW_STYLE a dog"),
    ]


def test_columns_name_the_list_files(tmp_path: Path) -> None:
    _touch(tmp_path / "a.mov")
    (tmp_path / "my_prompts.txt").write_text("a cat\n")
    (tmp_path / "my_videos.txt").write_text("a.mov\n")
    records = load_records(tmp_path, video_column="my_videos.txt", caption_column="my_prompts.txt")
    assert [r.caption for r in records] == ["a cat"]
    # finetrainers' table defaults ("video", "text") naming no file fall back to the known names
    with pytest.raises(VideoDataError, match="a.mov"):  # the pair layout: a.mov has no a.txt
        load_records(tmp_path, video_column="video", caption_column="text")
    with pytest.raises(VideoDataError, match=r"--caption_column nope.txt: no such file.*my_prompts.txt"):
        load_records(tmp_path, video_column="my_videos.txt", caption_column="nope.txt")


def test_list_problems_are_all_collected(tmp_path: Path) -> None:
    _touch(tmp_path / "a.mp4")
    (tmp_path / "prompts.txt").write_text("one\n\nthree\nfour\n")
    (tmp_path / "videos.txt").write_text("a.mp4\nmissing1.mp4\nmissing2.mp4\nclip.flv\nextra.mp4\n")
    with pytest.raises(VideoDataError) as info:
        load_records(tmp_path)
    text = str(info.value)
    assert "prompts.txt has 4 caption line(s) but videos.txt has 5 video line(s)" in text
    assert "prompts.txt line 2 is empty" in text
    assert "clip.flv: unknown extension .flv" in text
    assert "3 of 5 file(s) listed in videos.txt do not exist" in text
    assert "missing1.mp4" in text and "missing2.mp4" in text and "extra.mp4" in text


def test_half_a_list_pair_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prompts.txt").write_text("a\n")
    with pytest.raises(VideoDataError, match=r"found prompts.txt but not its partner list \(videos.txt"):
        load_records(tmp_path)
    (tmp_path / "prompt.txt").write_text("a\n")
    with pytest.raises(VideoDataError, match=r"found prompts.txt and prompt.txt: keep one, or name it with --caption_column"):
        load_records(tmp_path)


def test_csv_json_jsonl_tables(tmp_path: Path) -> None:
    _touch(tmp_path / "clips" / "a.mp4", tmp_path / "clips" / "b.png")
    (tmp_path / "meta.csv").write_text('video,text,score\nclips/a.mp4,"a cat, walking",1\nclips/b.png,a dog,2\n')
    rows = [{"video": "clips/a.mp4", "text": "a cat, walking"}, {"video": "clips/b.png", "text": "a dog"}]
    (tmp_path / "meta.json").write_text(json.dumps(rows))
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": rows}))
    (tmp_path / "meta.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    for name in ("meta.csv", "meta.json", "wrapped.json", "meta.jsonl"):
        records = load_records(tmp_path, dataset_file=tmp_path / name, id_token="tok")
        assert [(Path(r.path).name, r.caption) for r in records] == [("a.mp4", "tok a cat, walking"), ("b.png", "tok a dog")]
        assert records[1].is_image and not records[0].is_image
    # paths relative to --data_root when given
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "m.csv").write_text("file,caption\na.mp4,x\n")
    records = load_records(tmp_path / "clips", tmp_path / "elsewhere" / "m.csv", "file", "caption")
    assert records == [VideoRecord(str(tmp_path / "clips" / "a.mp4"), "x")]


def test_table_errors(tmp_path: Path) -> None:
    (tmp_path / "multi.csv").write_text('video,text\na.mp4,"two\nlines"\nc.mp4,\n')
    _touch(tmp_path / "a.mp4", tmp_path / "c.mp4")
    with pytest.raises(VideoDataError, match="multi.csv line 4: text is empty"):
        load_records(tmp_path, tmp_path / "multi.csv")
    (tmp_path / "multi.csv").write_text('video,text\na.mp4,"two\nlines"\n')
    assert load_records(tmp_path, tmp_path / "multi.csv")[0].caption == "two\nlines"
    (tmp_path / "m.csv").write_text("file_name,prompt\na.mp4,x\n")
    with pytest.raises(VideoDataError, match=r"no column 'video', 'text'; the columns are: file_name, prompt"):
        load_records(None, tmp_path / "m.csv")
    _touch(tmp_path / "a.mp4")
    (tmp_path / "e.jsonl").write_text('{"video": "a.mp4", "text": ""}\n{"video": "b.mp4", "text": "y"}\nnot json\n')
    with pytest.raises(VideoDataError) as info:
        load_records(None, tmp_path / "e.jsonl")
    assert "e.jsonl line 3: not valid JSON" in str(info.value)
    (tmp_path / "e.jsonl").write_text('{"video": "a.mp4", "text": ""}\n{"video": "b.mp4", "text": "y"}\n')
    with pytest.raises(VideoDataError) as info:
        load_records(None, tmp_path / "e.jsonl")
    assert "e.jsonl line 1: text is empty or missing" in str(info.value)
    assert "1 of 2 file(s) listed in e.jsonl do not exist" in str(info.value)
    with pytest.raises(VideoDataError, match=r"Parquet.*pyarrow.*CSV, JSON.*JSONL"):
        load_records(None, tmp_path / "m.parquet")
    with pytest.raises(VideoDataError, match=r"unknown table format .tsv"):
        load_records(None, tmp_path / "m.tsv")


def test_caption_pairs(tmp_path: Path) -> None:
    _touch(tmp_path / "a.mp4", tmp_path / "b.jpg", tmp_path / "notes.md")
    (tmp_path / "a.txt").write_text("a cat\n")
    (tmp_path / "b.txt").write_text("a dog")
    records = load_records(tmp_path, id_token="sks")
    assert [(Path(r.path).name, r.caption) for r in records] == [("a.mp4", "sks a cat"), ("b.jpg", "sks a dog")]


def test_caption_pair_problems(tmp_path: Path) -> None:
    _touch(tmp_path / "a.mp4", tmp_path / "a.png", tmp_path / "b.webm", tmp_path / "c.mov", tmp_path / "d.flv")
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.txt").write_text("  \n")
    (tmp_path / "d.txt").write_text("y")
    with pytest.raises(VideoDataError) as info:
        load_records(tmp_path)
    text = str(info.value)
    assert "a.mp4, a.png share the caption a.txt" in text
    assert "b.txt is empty" in text
    assert "1 file(s) have no same-name .txt caption" in text and "c.mov" in text
    assert "d.flv: unknown extension .flv" in text
    assert "4 problem(s)" in text


def test_no_data(tmp_path: Path) -> None:
    with pytest.raises(VideoDataError, match="no training data given"):
        load_records(None)
    with pytest.raises(VideoDataError, match="not a folder"):
        load_records(tmp_path / "nope")
    with pytest.raises(VideoDataError, match="no videos or images found"):
        load_records(tmp_path)
