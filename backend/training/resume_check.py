"""Does a saved training state fit this run? Said before anything is loaded, naming what differs.

A state folder continues exactly the run that saved it: the same network (module, dims, alpha,
shape-changing network_args), the same training method, base model family and optimizer. Two
checks, so a mismatch never ends in a traceback of size mismatches:

- in preflight, the run record that `train_state.json` carries (`"run"`, written by every save since
  it was introduced) is compared with this run's options, and the differing options are named;
- when the run is built, before accelerate loads the state, the saved weights' names and shapes
  (read memory-mapped from the state's `custom_checkpoint_<i>.pkl`) are compared with the network or
  model just built. This also covers states without a record.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backend.networks.args import NetworkArgsError, parse_network_args
from backend.options.schema import LORA_COMMANDS
from backend.training.optimizers import resolve_optimizer_name
from backend.training.run_errors import ResumeMismatch

# network_args that change how the network trains but not what it holds: free to change on resume.
TRAINING_ONLY_NETWORK_ARGS = frozenset({"dropout", "rank_dropout", "module_dropout"})
RECORD_LABELS = {
    "method": "training method", "family": "base model family", "optimizer": "--optimizer_type",
    "network_module": "--network_module", "network_dim": "--network_dim", "network_alpha": "--network_alpha",
    "network_args": "--network_args", "network_train_unet_only": "--network_train_unet_only",
    "network_train_text_encoder_only": "--network_train_text_encoder_only", "dim_from_weights": "--dim_from_weights",
    "unet_trained": "U-Net trained (--learning_rate above 0)", "train_text_encoder": "--train_text_encoder",
    "ema": "--ema",
}
METHOD_NAMES = {"network": "a network (LoRA) training", "fine_tune": "a full fine-tune"}


def run_record(args: argparse.Namespace, command: str, family: str | None) -> dict[str, Any]:
    """What a state saved by this run is tied to (written into train_state.json, compared on --resume)."""
    try:
        optimizer = resolve_optimizer_name(args)
    except ValueError:
        optimizer = str(getattr(args, "optimizer_type", ""))
    record: dict[str, Any] = {"method": "network" if command in LORA_COMMANDS else "fine_tune", "family": family,
                              "optimizer": optimizer}
    if command in LORA_COMMANDS:
        try:
            network_args = parse_network_args(args.network_args)
        except NetworkArgsError:
            network_args = {}
        record.update(
            network_module=args.network_module,
            network_dim=args.network_dim,
            network_alpha=float(args.network_alpha),
            network_args={k: v for k, v in sorted(network_args.items()) if k not in TRAINING_ONLY_NETWORK_ARGS},
            network_train_unet_only=bool(args.network_train_unet_only),
            network_train_text_encoder_only=bool(args.network_train_text_encoder_only),
            dim_from_weights=bool(args.dim_from_weights),
        )
    else:
        record.update(unet_trained=args.learning_rate > 0, train_text_encoder=bool(args.train_text_encoder),
                      ema=bool(args.ema))
    return record


def _shown(key: str, value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "(none)"
    if key == "method":
        return METHOD_NAMES.get(value, str(value))
    return str(value)


def record_mismatches(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """'--network_dim: 8 in the state, 4 in this run' for each option that differs."""
    if saved.get("method") != current.get("method"):
        return [f"{RECORD_LABELS['method']}: {_shown('method', saved.get('method'))} in the state, "
                f"{_shown('method', current.get('method'))} in this run"]
    differences = []
    for key, value in current.items():
        if key not in saved or value is None or saved[key] is None:
            continue  # older records, or facts preflight could not establish
        if saved[key] != value:
            differences.append(f"{RECORD_LABELS.get(key, key)}: {_shown(key, saved[key])} in the state, "
                               f"{_shown(key, value)} in this run")
    return differences


def mismatch_message(folder: str | Path, differences: list[str]) -> str:
    return (
        f"--resume {folder} was saved by a run with other settings, so it cannot continue this one: "
        + "; ".join(differences)
        + ". Resume with the settings the state was saved with, or start without --resume (to start from the "
        "trained weights with new network settings, train a new network instead)"
    )


# --- the weights themselves, when the run is built -----------------------------------------------
def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else None


def shape_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Counts and first examples of weights missing, unexpected or of another shape."""
    saved_keys = {k for k, v in saved.items() if _shape(v) is not None}
    current_keys = {k for k, v in current.items() if _shape(v) is not None}
    missing = sorted(current_keys - saved_keys)
    unexpected = sorted(saved_keys - current_keys)
    reshaped = sorted(k for k in saved_keys & current_keys if _shape(saved[k]) != _shape(current[k]))
    found = []
    if reshaped:
        key = reshaped[0]
        found.append(f"{len(reshaped)} of {len(current_keys)} weights have another shape (e.g. {key}: "
                     f"{'x'.join(map(str, _shape(saved[key]) or ()))} in the state, "
                     f"{'x'.join(map(str, _shape(current[key]) or ()))} in this run)")
    if missing:
        found.append(f"{len(missing)} weights of this run are not in the state (e.g. {missing[0]})")
    if unexpected:
        found.append(f"{len(unexpected)} weights in the state are not in this run (e.g. {unexpected[0]})")
    return found


def optimizer_differences(saved: Mapping[str, Any], optimizer: Any) -> list[str]:
    """The saved optimizer state against this run's optimizer: number of parameter groups, and the
    settings each group holds (another optimizer type has other ones: SGD has no betas, AdamW no momentum)."""
    saved_groups = saved.get("param_groups")
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(saved_groups, list) or groups is None:
        return []
    if len(saved_groups) != len(groups):
        return [f"the optimizer has {len(saved_groups)} parameter groups in the state, {len(groups)} in this run"]
    for saved_group, group in zip(saved_groups, groups, strict=True):
        saved_keys, keys = set(saved_group) - {"params"}, set(group) - {"params"}
        only_saved, only_here = sorted(saved_keys - keys)[:3], sorted(keys - saved_keys)[:3]
        if only_saved and only_here:  # one-sided: a setting an optimizer adds as it steps, not another type
            return [f"the optimizer is another type (settings only in the state: {', '.join(only_saved)}; "
                    f"only in this run: {', '.join(only_here)})"]
    return []


def _load(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # pickled objects torch will not read safely: accelerate's own load decides
        return None


def check_state_fits(folder: str | Path, objects: list[Any], optimizer: Any) -> None:
    """Raise ResumeMismatch when the state's saved weights or optimizer do not fit this run's."""
    folder = Path(folder)
    check_state_objects(folder, objects)
    saved = _load(folder / "optimizer.bin") if (folder / "optimizer.bin").is_file() else None
    differences = optimizer_differences(saved, optimizer) if isinstance(saved, Mapping) else []
    if differences:
        raise ResumeMismatch(
            f"--resume {folder} does not fit this run: {'; '.join(differences)}. The state was saved with another "
            "--optimizer_type (or other --network_args/learning-rate groups)",
            hint="Resume with the optimizer the state was saved with, or start without --resume.",
        )


def check_state_objects(folder: str | Path, objects: list[Any]) -> None:
    """Raise ResumeMismatch when the state's saved objects do not fit the objects this run registered."""
    folder = Path(folder)
    for index, obj in enumerate(objects):
        path = folder / f"custom_checkpoint_{index}.pkl"
        if not path.is_file():
            raise ResumeMismatch(
                f"--resume {folder} holds no {path.name}: the state was saved by a run with fewer trained objects "
                f"(e.g. without --ema), so it cannot continue this one",
                hint="Resume with the settings the state was saved with, or start without --resume.",
            )
        saved = _load(path)
        if not isinstance(saved, Mapping):
            continue
        differences = shape_differences(saved, obj.state_dict())
        if differences:
            raise ResumeMismatch(
                f"--resume {folder} does not fit this run: {'; '.join(differences)}. The state was saved with "
                "other network or model settings (--network_dim, --network_alpha, conv_dim/algo in --network_args, "
                "--network_module, the text encoder/U-Net options, or another base model)",
                hint="Resume with the settings the state was saved with, or start without --resume.",
            )
