"""train_video's checks before anything loads: every problem named, with what to do (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.options import parse_args
from backend.video.preflight import build_video_plan
from tests.data.video.make_clips import write_clip, write_corrupt

WAN = "wan2.1-t2v-1.3b"


def plan(tiny, tmp_path: Path, *extra: str, model_name: str = "wan", arch: str = WAN):
    argv = ["--model_name", model_name, "--pretrained_model_name_or_path", str(tiny.get(arch).path),
            "--training_type", "lora", "--output_dir", str(tmp_path / "out"), *extra]
    return build_video_plan(parse_args("train_video", argv))


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    write_clip(folder / "a.mp4", frames=17, size=(64, 64))
    (folder / "a.txt").write_text("a red square", encoding="utf-8")
    return folder


def test_a_sound_run_passes_with_its_clips_and_buckets(tiny, tmp_path, clips) -> None:
    result = plan(tiny, tmp_path, "--data_root", str(clips), "--video_resolution_buckets", "17x64x64",
                  "--validation_prompts", "red:::blue@@@5x64x64")
    assert result.ok, result.errors
    assert result.report["clips"] == 1 and result.report["buckets"] == {"17x64x64": 1}
    assert [(p.extra["num_frames"], p.width) for p in result.prompts] == [(17, 64), (5, 64)]


def test_a_frame_count_the_vae_cannot_take_is_named_with_the_nearest_ones(tiny, tmp_path, clips) -> None:
    result = plan(tiny, tmp_path, "--data_root", str(clips), "--video_resolution_buckets", "16x64x64")
    assert any("16 frames" in e and "1 + 4k" in e and "13 or 17" in e for e in result.errors), result.errors


def test_an_undecodable_video_is_listed_with_what_to_do(tiny, tmp_path, clips) -> None:
    write_corrupt(clips / "broken.mp4")
    (clips / "broken.txt").write_text("broken", encoding="utf-8")
    result = plan(tiny, tmp_path, "--data_root", str(clips), "--video_resolution_buckets", "17x64x64")
    assert len(result.errors) == 1 and "broken.mp4" in result.errors[0], result.errors


def test_a_dataset_file_missing_its_column_names_the_columns_it_has(tiny, tmp_path, clips) -> None:
    table = clips / "data.csv"
    table.write_text("file,text\na.mp4,a red square\n", encoding="utf-8")
    result = plan(tiny, tmp_path, "--data_root", str(clips), "--dataset_file", str(table),
                  "--video_resolution_buckets", "17x64x64")
    assert any("no column 'video'; the columns are: file, text" in e for e in result.errors), result.errors


def test_a_model_folder_of_another_family_is_named(tiny, tmp_path, clips) -> None:
    result = plan(tiny, tmp_path, "--data_root", str(clips), model_name="ltx_video")
    assert any("Wan 2.1 T2V model" in e and "--model_name ltx_video trains LTX-Video" in e for e in result.errors)
    result = plan(tiny, tmp_path, "--data_root", str(clips), arch="sd15")
    assert any("SD 1.x" in e for e in result.errors), result.errors


def test_degrees_this_trainer_cannot_run_and_a_missing_checkpoint_are_refused(tiny, tmp_path, clips) -> None:
    result = plan(tiny, tmp_path, "--data_root", str(clips), "--video_resolution_buckets", "17x64x64",
                  "--tp_degree", "2", "--resume_from_checkpoint", "3")
    assert any("--tp_degree 2: this trainer runs data parallel only" in e for e in result.errors)
    assert any("--resume_from_checkpoint 3" in e and "none found" in e for e in result.errors), result.errors


def test_a_v0_2_dataset_config_names_the_same_data(tiny, tmp_path, clips) -> None:
    config = tmp_path / "training.json"
    config.write_text(json.dumps({"datasets": [{"data_root": str(clips), "id_token": "TOK",
                                                "video_resolution_buckets": [[17, 64, 64]],
                                                "reshape_mode": "bicubic"}]}))
    result = plan(tiny, tmp_path, "--dataset_config", str(config))
    assert result.ok, result.errors
    assert result.scanned[0].record.caption == "TOK a red square" and result.reshape_modes == ["none"]
    config.write_text('{"datasets": [{}]}')
    assert any("datasets[0] needs a data_root" in e for e in plan(tiny, tmp_path, "--dataset_config", str(config)).errors)


def test_settings_without_effect_here_are_said(tiny, tmp_path, clips) -> None:
    result = plan(tiny, tmp_path, "--data_root", str(clips), "--video_resolution_buckets", "17x64x64",
                  "--enable_model_cpu_offload", "--precomputation_reuse")
    assert result.ok
    assert [w.split(" has no effect")[0] for w in result.warnings] == [
        "--enable_model_cpu_offload True", "--precomputation_reuse True"]


def test_component_dtypes_that_are_not_applied_are_said(tiny, tmp_path, clips) -> None:
    result = plan(tiny, tmp_path, "--data_root", str(clips), "--video_resolution_buckets", "17x64x64",
                  "--text_encoder_dtype", "fp32", "--vae_dtype", "fp32", "--variant", "fp16")
    assert result.ok
    assert [w.split(" has no effect")[0] for w in result.warnings] == ["--text_encoder_dtype fp32", "--variant fp16"]
    assert "compute dtype, bf16" in result.warnings[0]


def test_precomputation_dir_without_precomputation_is_said(tiny, tmp_path, clips) -> None:
    result = plan(tiny, tmp_path, "--data_root", str(clips), "--video_resolution_buckets", "17x64x64",
                  "--precomputation_dir", str(tmp_path / "pre"))
    assert result.ok and any("--precomputation_dir" in w and "--enable_precomputation" in w for w in result.warnings)
    with_it = plan(tiny, tmp_path, "--data_root", str(clips), "--video_resolution_buckets", "17x64x64",
                   "--precomputation_dir", str(tmp_path / "pre"), "--enable_precomputation")
    assert with_it.ok and with_it.warnings == []


def test_a_validation_image_is_found_beside_its_table_or_refused_where_the_family_cannot_use_it(
        tiny, tmp_path, clips) -> None:
    table = tmp_path / "validation" / "prompts.json"
    table.parent.mkdir()
    table.write_text(json.dumps({"data": [{"caption": "a cat", "image_path": "first.png", "num_frames": 9}]}))
    wan = plan(tiny, tmp_path, "--data_root", str(clips), "--video_resolution_buckets", "17x64x64",
                "--validation_dataset_file", str(table))
    assert any("image_path first.png" in e and "Wan 2.1" in e and "LTX-Video" in e for e in wan.errors), wan.errors
    ltx = dict(model_name="ltx_video", arch="ltx-video")
    missing = plan(tiny, tmp_path, "--data_root", str(clips), "--video_resolution_buckets", "17x64x64",
                "--validation_dataset_file", str(table), **ltx)
    assert any("first.png does not exist" in e for e in missing.errors), missing.errors
    (table.parent / "first.png").write_bytes(b"an image file")
    found = plan(tiny, tmp_path, "--data_root", str(clips), "--video_resolution_buckets", "17x64x64",
                "--validation_dataset_file", str(table), **ltx)
    assert found.ok, found.errors
    assert found.prompts[0].extra["image"] == str(table.parent / "first.png")
    # finetrainers' other columns (video_path: its control trainers') are said to be unused, not dropped silently
    table.write_text(json.dumps({"data": [{"caption": "a cat", "video_path": "v.mp4", "num_frames": 9}]}))
    said = plan(tiny, tmp_path, "--data_root", str(clips), "--video_resolution_buckets", "17x64x64",
                "--validation_dataset_file", str(table), **ltx)
    assert said.ok and any("video_path" in w and "not used" in w for w in said.warnings), said.warnings
