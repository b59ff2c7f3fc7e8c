"""finetrainers' file names, pruning habits and --resume_from_checkpoint values."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.training.checkpoints import TRAIN_STATE_FILE, step_save_to_prune
from backend.video.outputs import CheckpointNotFound, VideoMethod, resume_folder, video_output_names


def state(folder: Path, step: int, complete: bool = True) -> Path:
    path = folder / f"finetrainers_step_{step}"
    path.mkdir(parents=True)
    if complete:
        (path / TRAIN_STATE_FILE).write_text("{}")
    return path


def test_names_are_finetrainers() -> None:
    lora = video_output_names("/out", lora=True)
    assert lora.final_model() == Path("/out/pytorch_lora_weights.safetensors")
    assert lora.model_for_step(500) == Path("/out/lora_weights/000500/pytorch_lora_weights.safetensors")
    assert lora.state_for_step(500) == Path("/out/finetrainers_step_500")
    full = video_output_names("/out", lora=False)
    assert full.final_model() == Path("/out/transformer") and full.model_for_step(5) == Path("/out/model_weights/000005")


def test_resume_takes_latest_a_step_or_a_folder(tmp_path: Path) -> None:
    assert resume_folder("latest", str(tmp_path)) is None  # nothing saved yet: a fresh start, as finetrainers
    state(tmp_path, 4)
    newest = state(tmp_path, 8)
    state(tmp_path, 12, complete=False)  # cut short by a kill: never resumed from
    assert resume_folder("latest", str(tmp_path)) == str(newest)
    assert resume_folder("4", str(tmp_path)) == str(tmp_path / "finetrainers_step_4")
    assert resume_folder(str(newest), str(tmp_path)) == str(newest)
    with pytest.raises(CheckpointNotFound, match="no complete checkpoint of step 12 .steps found: 4, 8"):
        resume_folder("12", str(tmp_path))
    with pytest.raises(CheckpointNotFound, match="not a complete training state"):
        resume_folder(str(tmp_path / "finetrainers_step_12"), str(tmp_path))


def test_the_limit_prunes_states_and_keeps_every_lora(tmp_path: Path) -> None:
    every, limit = 2, 2
    keep = (limit - 1) * every  # what translate.py passes as save_last_n_steps
    assert [step_save_to_prune(s, every, keep) for s in (2, 4, 6, 8)] == [None, None, 2, 4]
    method = VideoMethod(object())
    names = video_output_names(str(tmp_path), lora=True)
    assert method.written_paths(names.state_for_step(2)) == [names.state_for_step(2)]
    assert method.written_paths(names.model_for_step(2)) == []
