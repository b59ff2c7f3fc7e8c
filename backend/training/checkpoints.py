"""Where trained files and training states go, which old ones are pruned, and how a run resumes.

Names follow sd-scripts so users find what they expect: `name.safetensors` at the end,
`name-000004.safetensors` per epoch, `name-step00000500.safetensors` per step, and state folders
`name-000004-state`, `name-step00000500-state`, `name-state`.

A state folder holds accelerate's state (network, optimizer, scheduler, RNG) plus
`train_state.json` with the step, the epoch and how many batches of that epoch were consumed, so
a resumed run continues at the next batch of the same deterministic data order. State folders are
written under a temporary name and renamed when complete: a run killed mid-save never leaves a
half-written folder under a name `--resume` would accept.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from backend.messages import msg
from backend.training.option_slice import OptionSlice

logger = logging.getLogger(__name__)

TRAIN_STATE_FILE = "train_state.json"
DEFAULT_OUTPUT_NAME = "last"


@dataclass(frozen=True)
class SaveConfig(OptionSlice):
    """What a run saves, where, in which precision, how often, and how many of the saves it keeps."""

    output_dir: str  # as given: messages name it so
    output_name: str | None
    save_model_as: str
    save_precision: str | None
    save_every_n_epochs: int | None
    save_every_n_steps: int | None
    save_last_n_epochs: int | None
    save_last_n_steps: int | None
    save_state: bool
    save_state_on_train_end: bool
    save_n_epoch_ratio: int | None = None
    save_last_n_epochs_state: int | None = None  # the states' own window (sd-scripts: 0 or unset = the models')
    save_last_n_steps_state: int | None = None

    def for_epochs(self, num_epochs: int) -> SaveConfig:
        """--save_n_epoch_ratio N: save every floor(epochs / N) epochs (at least every epoch), replacing
        --save_every_n_epochs, as every sd-scripts trainer does once it knows the number of epochs."""
        if not self.save_n_epoch_ratio or self.save_n_epoch_ratio <= 0:
            return self
        return replace(self, save_every_n_epochs=num_epochs // self.save_n_epoch_ratio or 1)

    @property
    def state_last_n_epochs(self) -> int | None:
        return self.save_last_n_epochs_state or self.save_last_n_epochs

    @property
    def state_last_n_steps(self) -> int | None:
        return self.save_last_n_steps_state or self.save_last_n_steps


@dataclass(frozen=True)
class TrainState:
    global_step: int  # optimizer steps done
    epoch: int  # the epoch in progress (from 1)
    # Global batches of `epoch` already consumed (batch size x processes each); in states without
    # `batch_sizes`, batches of one process's shard (resume_position.py).
    batches_done_in_epoch: int
    seed: int
    # What the state belongs to (method, network options, family, optimizer: resume_check.run_record);
    # None in states saved before it was recorded.
    run: dict[str, Any] | None = None
    # The saving run's processes, its global batch size per dataset and its epoch's global batches, so
    # another process count or batch size knows where to continue; None in older states.
    processes: int | None = None
    batch_sizes: tuple[int, ...] | None = None
    batches_in_epoch: int | None = None

    def to_json(self) -> dict[str, Any]:
        # sd-scripts writes current_epoch/current_step; keep those names for its users' tools.
        data = {**asdict(self), "current_step": self.global_step, "current_epoch": self.epoch}
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in data.items() if value is not None}


@dataclass(frozen=True)
class OutputNames:
    output_dir: Path
    output_name: str
    extension: str  # "" for a model saved as a folder (diffusers)

    @property
    def _suffix(self) -> str:
        return f".{self.extension}" if self.extension else ""

    def model_for_epoch(self, epoch: int) -> Path:
        return self.output_dir / f"{self.output_name}-{epoch:06d}{self._suffix}"

    def model_for_step(self, step: int) -> Path:
        return self.output_dir / f"{self.output_name}-step{step:08d}{self._suffix}"

    def final_model(self) -> Path:
        return self.output_dir / f"{self.output_name}{self._suffix}"

    def state_for_epoch(self, epoch: int) -> Path:
        return self.output_dir / f"{self.output_name}-{epoch:06d}-state"

    def state_for_step(self, step: int) -> Path:
        return self.output_dir / f"{self.output_name}-step{step:08d}-state"

    def final_state(self) -> Path:
        return self.output_dir / f"{self.output_name}-state"


def output_names(output_dir: str, output_name: str | None, extension: str) -> OutputNames:
    return OutputNames(Path(output_dir), output_name or DEFAULT_OUTPUT_NAME, extension)


def epoch_save_to_prune(epoch: int, every_n_epochs: int | None, keep_last_n: int | None) -> int | None:
    """The epoch whose save falls out of the `--save_last_n_epochs` window when `epoch` is saved."""
    if not every_n_epochs or not keep_last_n:
        return None
    old = epoch - every_n_epochs * keep_last_n
    return old if old > 0 else None


def step_save_to_prune(step: int, every_n_steps: int | None, keep_last_n_steps: int | None) -> int | None:
    """The step whose save falls out of the `--save_last_n_steps` window when `step` is saved.

    As in sd-scripts, N counts steps, not saves: saves older than step - N are removed. So 0 keeps
    only the newest save, and a negative N points past the newest one and removes nothing.
    """
    if not every_n_steps or keep_last_n_steps is None:
        return None
    old = ((step - keep_last_n_steps - 1) // every_n_steps) * every_n_steps
    return old if 0 < old < step else None


def remove_quietly(path: Path) -> None:
    """Remove a file or folder if it is there; a failure (read-only folder) is logged, not raised."""
    try:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    except OSError as exc:
        logger.warning(msg("run.remove_failed", "could not remove {path}: {error}", path=path, error=exc))


def save_state(accelerator: Any, folder: Path, state: TrainState) -> Path:
    """accelerate's full state plus train_state.json, renamed into place when complete.

    Every process takes part (accelerate writes per-process pieces); the main one finishes it. When
    writing fails, the half-written temporary folder is removed and the error raised."""
    partial = folder.with_name(folder.name + ".partial")
    try:
        if accelerator.is_main_process:
            folder.parent.mkdir(parents=True, exist_ok=True)
            remove_quietly(partial)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (partial / TRAIN_STATE_FILE).write_text(json.dumps(state.to_json(), indent=2))
            if folder.exists():
                previous = folder.with_name(folder.name + ".old")
                remove_quietly(previous)
                os.replace(folder, previous)
                os.replace(partial, folder)
                remove_quietly(previous)
            else:
                os.replace(partial, folder)
    except BaseException:
        if accelerator.is_main_process:
            remove_quietly(partial)
        raise
    accelerator.wait_for_everyone()
    return folder


class NotAStateFolder(FileNotFoundError):
    """--resume names something that is not a complete training state (a FileNotFoundError for callers)."""


def read_train_state(folder: str | Path) -> TrainState:
    """The step/epoch record of a state folder; a clear error when it is not one."""
    folder = Path(folder)
    record = folder / TRAIN_STATE_FILE
    if not folder.is_dir():
        raise FileNotFoundError(msg("preflight.resume.no_folder", "--resume {folder}: no such folder (give a "
                                    "'…-state' folder saved by --save_state)", folder=folder))
    if not record.is_file():
        raise FileNotFoundError(msg(
            "preflight.resume.no_record", "--resume {folder}: train_state.json is missing, so this is not a complete "
            "training state (an interrupted save, or a folder from another tool)", folder=folder,
        ))
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(msg("preflight.resume.not_an_object", "not a JSON object"))
        sizes = data.get("batch_sizes")
        return TrainState(
            global_step=int(data.get("global_step", data.get("current_step", 0))),
            epoch=int(data.get("epoch", data.get("current_epoch", 1))),
            batches_done_in_epoch=int(data.get("batches_done_in_epoch", 0)),
            seed=int(data.get("seed", 0)),
            run=data.get("run") if isinstance(data.get("run"), dict) else None,
            # Older states: accelerate wrote one random_states_<i>.pkl per process.
            processes=int(data.get("processes") or len(list(folder.glob("random_states_*.pkl"))) or 1),
            batch_sizes=tuple(int(size) for size in sizes) if isinstance(sizes, list) else None,
            batches_in_epoch=int(data["batches_in_epoch"]) if "batches_in_epoch" in data else None,
        )
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise NotAStateFolder(msg(
            "preflight.resume.bad_record", "--resume {folder}: train_state.json cannot be read ({error}); the state "
            "is damaged. Resume from another saved state or start without --resume", folder=folder, error=exc,
        )) from exc
