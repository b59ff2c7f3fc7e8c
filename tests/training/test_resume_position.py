"""Where a resumed run continues inside the saved epoch, for the same or another global batch size."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from backend.data import DatasetGroup, TrainDataset, specs_from_args
from backend.training.checkpoints import TRAIN_STATE_FILE, TrainState, read_train_state
from backend.training.resume_position import resume_skip
from tests.data.helpers import make_image


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resume-position") / "train"
    for i in range(6):
        make_image(root / "2_x" / f"{i}.png")
    return root  # 12 samples in one bucket


def group(root: Path, batch_size: int, processes: int) -> DatasetGroup:
    (spec,) = specs_from_args({"train_data_dir": str(root), "resolution": "64", "train_batch_size": batch_size})
    return DatasetGroup([TrainDataset(spec, warn=lambda _: None, processes=processes)], rank=processes - 1)


def saved(done: int, batch_size: int, processes: int, batches: int) -> TrainState:
    return TrainState(5, 2, done, 0, processes=processes, batch_sizes=(batch_size * processes,),
                      batches_in_epoch=batches)


def test_same_global_batch_continues_at_the_next_batch_with_any_process_count(train_dir, caplog):
    state = saved(done=2, batch_size=1, processes=2, batches=6)  # 2 processes x batch 1
    with caplog.at_level(logging.WARNING):
        assert resume_skip(state, group(train_dir, 2, 1), "s") == 2  # onto 1 process x batch 2
        assert resume_skip(state, group(train_dir, 1, 2), "s") == 2
    assert not caplog.records


def test_another_global_batch_continues_after_the_same_share_of_the_epoch(train_dir, caplog):
    state = saved(done=2, batch_size=2, processes=2, batches=3)  # global 4: 2 of 3 batches done
    with caplog.at_level(logging.WARNING):
        skip = resume_skip(state, group(train_dir, 2, 1), "the-state")  # global 2: 6 batches
    assert skip == 4
    (record,) = caplog.records
    assert "global batch of 4" in record.message and "this run has 2" in record.message
    assert "after 4 of its 6 batches" in record.message
    # An unfinished epoch never becomes a finished one by rounding.
    assert resume_skip(saved(done=5, batch_size=1, processes=1, batches=6), group(train_dir, 4, 1), "s") == 2


def test_older_states_counted_each_processs_batches(train_dir, tmp_path, caplog):
    (tmp_path / TRAIN_STATE_FILE).write_text(json.dumps({"global_step": 3, "epoch": 1, "batches_done_in_epoch": 3,
                                                         "seed": 0}))
    one = read_train_state(tmp_path)
    assert (one.processes, one.batch_sizes, one.batches_in_epoch) == (1, None, None)
    with caplog.at_level(logging.WARNING):
        assert resume_skip(one, group(train_dir, 1, 1), tmp_path) == 3  # one process then and now: as before
    assert not caplog.records
    for rank in (0, 1):  # saved by two processes (accelerate's RNG file per process): 6 of each's 6 batches
        (tmp_path / f"random_states_{rank}.pkl").write_bytes(b"")
    two = read_train_state(tmp_path)
    assert two.processes == 2
    with caplog.at_level(logging.WARNING):
        assert resume_skip(two, group(train_dir, 1, 2), tmp_path) == 3  # half of the epoch: 3 of 6 global batches
    assert "older version" in caplog.records[0].message


def test_the_record_round_trips(tmp_path):
    state = saved(done=2, batch_size=1, processes=2, batches=6)
    (tmp_path / TRAIN_STATE_FILE).write_text(json.dumps(state.to_json()))
    assert read_train_state(tmp_path) == state
