"""Where the video trainer writes, with finetrainers' names, and which checkpoint a resume takes.

- `output_dir/pytorch_lora_weights.safetensors`: the final LoRA (finetrainers' name; diffusers'
  `load_lora_weights(output_dir)` finds it); a full fine-tune: `output_dir/transformer/` (a diffusers
  transformer folder, `from_pretrained(output_dir, subfolder="transformer")`).
- `output_dir/lora_weights/<step:06d>/pytorch_lora_weights.safetensors` (or `model_weights/<step:06d>/`) at
  every `--checkpointing_steps`, all kept, as finetrainers keeps them.
- `output_dir/finetrainers_step_<step>/`: the training state of that step (network or weights, optimizer,
  scheduler, RNG, `train_state.json`), the newest `--checkpointing_limit` of them kept;
  `--resume_from_checkpoint latest` takes the newest, a number that step's, a path that folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.messages import msg
from backend.training.checkpoints import TRAIN_STATE_FILE, OutputNames

LORA_FILE = "pytorch_lora_weights.safetensors"
STATE_PREFIX = "finetrainers_step_"
_STATE_NAME = re.compile(rf"{STATE_PREFIX}(\d+)")


@dataclass(frozen=True)
class VideoOutputNames(OutputNames):
    lora: bool = True

    def model_for_step(self, step: int) -> Path:
        if self.lora:
            return self.output_dir / "lora_weights" / f"{step:06d}" / LORA_FILE
        return self.output_dir / "model_weights" / f"{step:06d}"

    def model_for_epoch(self, epoch: int) -> Path:  # finetrainers saves by step only; kept for the protocol
        return self.output_dir / ("lora_weights" if self.lora else "model_weights") / f"epoch{epoch:04d}" / (
            LORA_FILE if self.lora else "")

    def final_model(self) -> Path:
        return self.output_dir / (LORA_FILE if self.lora else "transformer")

    def state_for_step(self, step: int) -> Path:
        return self.output_dir / f"{STATE_PREFIX}{step}"

    def state_for_epoch(self, epoch: int) -> Path:
        return self.output_dir / f"{STATE_PREFIX}epoch{epoch}"

    def final_state(self) -> Path:
        return self.output_dir / f"{STATE_PREFIX}final"


def video_output_names(output_dir: str, lora: bool) -> VideoOutputNames:
    return VideoOutputNames(Path(output_dir), "pytorch_lora_weights" if lora else "transformer",
                            "safetensors" if lora else "", lora=lora)


def saved_states(output_dir: str | Path) -> dict[int, Path]:
    """The complete training states in `output_dir` by step (a state without train_state.json was cut short)."""
    found: dict[int, Path] = {}
    folder = Path(output_dir)
    if not folder.is_dir():
        return found
    for entry in folder.iterdir():
        match = _STATE_NAME.fullmatch(entry.name)
        if match and (entry / TRAIN_STATE_FILE).is_file():
            found[int(match.group(1))] = entry
    return found


class CheckpointNotFound(ValueError):
    pass


def resume_folder(value: str | None, output_dir: str) -> str | None:
    """The state folder `--resume_from_checkpoint` names: "latest" (None when there is none yet, as
    finetrainers starts fresh then), a step number, or a folder."""
    if not value:
        return None
    states = saved_states(output_dir)
    if value == "latest":
        return str(states[max(states)]) if states else None
    if value.isdigit():
        if int(value) in states:
            return str(states[int(value)])
        raise CheckpointNotFound(msg(
            "video.resume.no_step", "--resume_from_checkpoint {step}: {folder} holds no complete checkpoint of step "
            "{step} ({found})", step=value, folder=output_dir,
            found=msg("video.resume.steps_found", "steps found: {steps}", steps=", ".join(map(str, sorted(states))))
            if states else msg("video.resume.none_found", "none found"),
        ))
    path = Path(value)
    if not (path / TRAIN_STATE_FILE).is_file():
        raise CheckpointNotFound(msg(
            "video.resume.not_a_state", "--resume_from_checkpoint {path} is not a complete training state (no {file} "
            "in it); give latest, a step number or a finetrainers_step_<N> folder", path=value, file=TRAIN_STATE_FILE,
        ))
    return str(path)


class VideoMethod:
    """The training method with finetrainers' saving habits: a save's folder is made first, and pruning
    (`--checkpointing_limit`) removes old training states but keeps every saved LoRA / model, as
    finetrainers does. Everything else is the wrapped method's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def save(self, path: Path, dtype: Any, metadata: dict[str, str] | None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return self._inner.save(path, dtype, metadata)

    def written_paths(self, path: Path) -> list[Path]:
        return [path] if path.name.startswith(STATE_PREFIX) else []
