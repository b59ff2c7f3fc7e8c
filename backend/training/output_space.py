"""Can the run write where it will write, and is there room for what it will save?

Checked twice: in preflight (before a model is loaded: folders, and for a fine-tune the size
read from the model's safetensors headers) and when the run is built (the exact sizes from the
trained parameters), so a run never trains for hours and then fails at its save.

What a run keeps on disk at its fullest: the final model, the intermediate saves that
`--save_last_n_epochs`/`--save_last_n_steps` keep (plus the one being written before an old one is
pruned), and as many state folders when `--save_state` is on (plus `-state` at the end with
`--save_state_on_train_end`). A state folder holds the trained weights in float32 and the
optimizer's state (Adam: two more float32 values per weight).
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from backend.atomic import temp_name
from backend.messages import msg
from backend.training.checkpoints import SaveConfig

# Optimizer state per trained weight, in float32 values (an estimate: exact sizes depend on the options).
OPTIMIZER_STATE_VALUES = (
    ("8bit", 0.5), ("adafactor", 0.1), ("sgd", 1.0), ("lion", 1.0), ("prodigy", 4.0), ("dadapt", 3.0),
)
DEFAULT_OPTIMIZER_STATE_VALUES = 2.0  # Adam's two moments
SAFETENSORS_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8,
                           "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
SAVE_PRECISION_BYTES = {None: None, "float": 4, "fp16": 2, "bf16": 2}


def gib(size: float) -> str:
    return f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return msg("run.write_failure.permission_denied", "permission denied")
    if exc.errno == errno.EROFS:
        return msg("run.write_failure.read_only", "read-only file system")
    return exc.strerror or str(exc)


def existing_ancestor(folder: Path) -> Path:
    """The folder itself if it exists, else the nearest parent that does (what creating it depends on)."""
    probe = folder.absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe


def choose_another() -> str:
    return msg("preflight.output.choose_another", "choose a folder you can write to")


def folder_problem(label: str, folder: str | os.PathLike[str], fix: str | None = None) -> str | None:
    """Why files cannot be written into `folder` (created when missing), or None. `label` names the folder
    as the user knows it (a flag, or "the sample folder"), `fix` says what to do (default: choose another).

    Tried for real (a hidden file created and removed, named as our temporary files are, so a crash
    leaves nothing unknown): permission bits do not tell about read-only mounts, ACLs or root.
    """
    path = Path(folder)
    base = existing_ancestor(path)
    fix = fix or choose_another()
    if not base.is_dir():
        if base == path.absolute():
            return msg("preflight.output.is_a_file", "{label} {folder} is a file, not a folder; {fix} (or move the "
                       "file away)", label=label, folder=folder, fix=fix)
        return msg("preflight.output.parent_is_a_file", "{label} {folder} cannot be created: {base} is a file, not a "
                   "folder; {fix} (or move the file away)", label=label, folder=folder, base=base, fix=fix)
    probe = temp_name(base / "write-check")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if base == path.absolute():
            return msg("preflight.output.not_writable", "{label} {folder}: cannot write there: {reason}; {fix}",
                       label=label, folder=folder, reason=_reason(exc), fix=fix)
        return msg("preflight.output.not_creatable", "{label} {folder}: cannot write there (it would be created in "
                   "{base}): {reason}; {fix}", label=label, folder=folder, base=base, reason=_reason(exc), fix=fix)
    return None


@dataclass(frozen=True)
class SaveCounts:
    """How many model files and state folders the run holds on disk at once, at the most."""

    models: int
    states: int


def _kept(saves: int, keep_window: int | None) -> int:
    # While a save is written, the one it pushes out of the window still exists: one more.
    return saves if not keep_window else min(saves, keep_window + 1)


def save_counts(config: SaveConfig, total_steps: int, epochs: int) -> SaveCounts:
    epoch_saves = (epochs - 1) // config.save_every_n_epochs if config.save_every_n_epochs else 0
    step_saves = (total_steps - 1) // config.save_every_n_steps if config.save_every_n_steps else 0
    def kept(last_n_epochs: int | None, last_n_steps: int | None) -> int:
        return _kept(epoch_saves, last_n_epochs) + _kept(
            step_saves, math.ceil(last_n_steps / config.save_every_n_steps) if last_n_steps and step_saves else None)

    models = kept(config.save_last_n_epochs, config.save_last_n_steps)
    states = kept(config.state_last_n_epochs, config.state_last_n_steps) if config.save_state else 0
    return SaveCounts(models=1 + models, states=states + (1 if config.save_state_on_train_end else 0))


def state_bytes(trained_numel: int, optimizer: str, ema: bool) -> int:
    """A state folder: float32 weights, the optimizer's values per weight, EMA averages."""
    name = optimizer.lower()
    values = next((v for key, v in OPTIMIZER_STATE_VALUES if key in name), DEFAULT_OPTIMIZER_STATE_VALUES)
    return int(trained_numel * 4 * (1 + values + (1 if ema else 0)))


def space_problem(folder: str | os.PathLike[str], counts: SaveCounts, model_bytes: int, state_size: int) -> str | None:
    """A message when the folder's file system has less free space than the run will save there."""
    needed = counts.models * model_bytes + counts.states * state_size
    base = existing_ancestor(Path(folder))
    if not base.is_dir() or needed <= 0:
        return None
    free = shutil.disk_usage(base).free
    if free >= needed:
        return None
    models = (msg("preflight.space.one_model", "1 model file of about {size}", size=gib(model_bytes))
              if counts.models == 1 else
              msg("preflight.space.models", "{count} model files of about {size}", count=counts.models,
                  size=gib(model_bytes)))
    if counts.states:
        states = (msg("preflight.space.one_state", "1 training state of about {size}", size=gib(state_size))
                  if counts.states == 1 else
                  msg("preflight.space.states", "{count} training states of about {size}", count=counts.states,
                      size=gib(state_size)))
        saves = msg("preflight.space.models_and_states", "{models} and {states}", models=models, states=states)
    else:
        saves = models
    return msg(
        "preflight.space.too_little", "--output_dir {folder}: only {free} free, but this run saves about {needed} "
        "there ({saves}). Free some space, choose a folder on another disk, keep fewer saves (--save_last_n_epochs / "
        "--save_last_n_steps, fewer --save_state folders) or save smaller files (--save_precision fp16 or bf16)",
        folder=folder, free=gib(free), needed=gib(needed), saves=saves,
    )


# --- sizes read from a model's safetensors headers (no torch, nothing loaded) -----------------------
SINGLE_FILE_PARTS = (("model.diffusion_model.", "unet"), ("first_stage_model.", "vae"),
                     ("cond_stage_model.", "text_encoder1"), ("conditioner.embedders.0.", "text_encoder1"),
                     ("conditioner.embedders.1.", "text_encoder2"))
FOLDER_PARTS = (("unet", "unet"), ("vae", "vae"), ("text_encoder", "text_encoder1"), ("text_encoder_2", "text_encoder2"))


def _header(path: Path) -> dict:
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length))


def _add_tensors(header: dict, part_of, sizes: dict[str, tuple[int, int]]) -> None:
    for key, info in header.items():
        if key == "__metadata__":
            continue
        part = part_of(key)
        if part is None:
            continue
        count = math.prod(info["shape"])
        numel, size = sizes.get(part, (0, 0))
        sizes[part] = (numel + count, size + count * SAFETENSORS_DTYPE_BYTES.get(info["dtype"], 4))


def model_part_sizes(model: str | os.PathLike[str]) -> dict[str, tuple[int, int]] | None:
    """{part: (elements, bytes as stored)} of a single .safetensors file or a diffusers folder with
    .safetensors weights; None when the weights are pickles (their sizes are only known once loaded)."""
    path = Path(model)
    sizes: dict[str, tuple[int, int]] = {}
    try:
        if path.is_file():
            if path.suffix.lower() != ".safetensors":
                return None

            def part_of(key: str) -> str | None:
                return next((part for prefix, part in SINGLE_FILE_PARTS if key.startswith(prefix)), None)

            _add_tensors(_header(path), part_of, sizes)
            return sizes or None
        for folder, part in FOLDER_PARTS:
            if not (path / folder).is_dir():
                continue
            files = sorted((path / folder).glob("*.safetensors"))
            if not files:
                return None
            for file in files:
                _add_tensors(_header(file), lambda key, part=part: part, sizes)
    except (OSError, ValueError, KeyError, struct.error):
        return None
    return sizes or None


# --- the preflight checks ----------------------------------------------------------------------------
def written_folders(args: argparse.Namespace, image_folders: list[str]) -> list[tuple[str, str | Path, str]]:
    """(what, folder, what to do) for every folder the run writes into."""
    folders: list[tuple[str, str | Path, str]] = [("--output_dir", args.output_dir, choose_another())]
    if args.sample_prompts:
        folders.append((msg("preflight.output.sample_folder", "the sample folder"), Path(args.output_dir) / "sample",
                        msg("preflight.output.another_output_dir", "choose another --output_dir")))
    if args.logging_dir:
        folders.append(("--logging_dir", args.logging_dir, choose_another()))
    caches = [f"--{name}" for name in ("cache_latents_to_disk", "cache_text_encoder_outputs_to_disk")
              if getattr(args, name, False)]
    if caches:  # the cache files are written beside the images
        fix = msg("preflight.output.cache_beside_images", "{flags} write their files beside the images: cache in "
                  "memory instead (--cache_latents / --cache_text_encoder_outputs) or copy the images to a folder you "
                  "can write to", flags=", ".join(caches))
        label = msg("preflight.output.image_folder", "the image folder")
        folders += [(label, folder, fix) for folder in dict.fromkeys(image_folders)]
    return folders


def finetune_save_sizes(args: argparse.Namespace, trained_parts: set[str]) -> tuple[int, int] | None:
    """(bytes of one model save, bytes of one state folder) of a fine-tune, from the model's headers."""
    parts = model_part_sizes(args.pretrained_model_name_or_path)
    if parts is None:
        return None
    save_size = SAVE_PRECISION_BYTES.get(args.save_precision)
    trained_size = 2 if (getattr(args, "full_fp16", False) or getattr(args, "full_bf16", False)) else 4
    model = 0
    for part, (numel, stored) in parts.items():
        if save_size is not None:
            model += numel * save_size
        else:  # trained parts are saved as trained, frozen ones as they were loaded
            model += numel * trained_size if part in trained_parts else stored
    if getattr(args, "ema", False) and getattr(args, "ema_save", None) == "beside":
        model *= 2
    trained = sum(numel for part, (numel, _) in parts.items() if part in trained_parts)
    optimizer = str(getattr(args, "optimizer_type", "") or "AdamW")
    return model, state_bytes(trained, optimizer, bool(getattr(args, "ema", False)))


def output_problems(args: argparse.Namespace, image_folders: list[str], steps_and_epochs: tuple[int, int] | None,
                    trained_parts: set[str] | None) -> list[str]:
    """Preflight: folders that cannot be written, and (for a fine-tune, whose size the model's headers tell)
    too little free space. A network's size is known once it is built: checked then (loop.check_free_space)."""
    problems = [p for label, folder, fix in written_folders(args, image_folders)
                if folder and (p := folder_problem(label, folder, fix))]
    if problems or steps_and_epochs is None or trained_parts is None:
        return problems
    sizes = finetune_save_sizes(args, trained_parts)
    if sizes is not None:
        counts = save_counts(SaveConfig.from_args(args).for_epochs(steps_and_epochs[1]), *steps_and_epochs)
        problem = space_problem(args.output_dir, counts, *sizes)
        if problem:
            problems.append(problem)
    return problems
