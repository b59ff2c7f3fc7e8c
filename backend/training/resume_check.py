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

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backend.messages import msg
from backend.networks.arg_keys import CHANGEABLE_ON_RESUME
from backend.networks.args import NetworkArgsError, parse_network_args
from backend.training.method_options import EmbeddingConfig, MethodConfig, NetworkConfig
from backend.training.optimizers import OptimizerConfig, resolve_optimizer_name
from backend.training.run_errors import ResumeMismatch

# The record's keys that are options are named by their flag; the others get words (`_label`).
RECORD_FLAGS = {
    "optimizer": "--optimizer_type", "network_module": "--network_module", "network_dim": "--network_dim",
    "network_alpha": "--network_alpha", "network_args": "--network_args",
    "network_train_unet_only": "--network_train_unet_only",
    "network_train_text_encoder_only": "--network_train_text_encoder_only", "dim_from_weights": "--dim_from_weights",
    "train_text_encoder": "--train_text_encoder", "ema": "--ema", "token_string": "--token_string",
    "num_vectors_per_token": "--num_vectors_per_token",
}


def _label(key: str) -> str:
    if key in RECORD_FLAGS:
        return RECORD_FLAGS[key]
    if key == "method":
        return msg("preflight.resume.label_method", "training method")
    if key == "family":
        return msg("preflight.resume.label_family", "base model family")
    if key == "unet_trained":
        return msg("preflight.resume.label_unet_trained", "U-Net trained (--learning_rate above 0)")
    return key


def run_record(method: MethodConfig, optimizer: OptimizerConfig, family: str | None) -> dict[str, Any]:
    """What a state saved by this run is tied to (written into train_state.json, compared on --resume)."""
    try:
        optimizer_name = resolve_optimizer_name(optimizer)
    except ValueError:
        optimizer_name = str(optimizer.optimizer_type)
    kind = ("network" if isinstance(method, NetworkConfig)
            else "textual_inversion" if isinstance(method, EmbeddingConfig) else "fine_tune")
    record: dict[str, Any] = {"method": kind, "family": family, "optimizer": optimizer_name}
    if isinstance(method, EmbeddingConfig):
        record.update(token_string=method.token_string, num_vectors_per_token=method.num_vectors_per_token)
    elif isinstance(method, NetworkConfig):
        try:
            network_args = parse_network_args(method.network_args)
        except NetworkArgsError:
            network_args = {}
        record.update(
            network_module=method.network_module,
            network_dim=method.network_dim,
            network_alpha=float(method.network_alpha),
            network_args={k: v for k, v in sorted(network_args.items()) if k not in CHANGEABLE_ON_RESUME},
            network_train_unet_only=bool(method.network_train_unet_only),
            network_train_text_encoder_only=bool(method.network_train_text_encoder_only),
            dim_from_weights=bool(method.dim_from_weights),
        )
    else:
        record.update(unet_trained=method.learning_rate > 0, train_text_encoder=bool(method.train_text_encoder),
                      ema=bool(method.ema))
    return record


def _shown(key: str, value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or msg("preflight.resume.none", "(none)")
    if key == "method" and value == "network":
        return msg("preflight.resume.method_network", "a network (LoRA) training")
    if key == "method" and value == "fine_tune":
        return msg("preflight.resume.method_fine_tune", "a full fine-tune")
    if key == "method" and value == "textual_inversion":
        return msg("preflight.resume.method_textual_inversion", "a Textual Inversion")
    return str(value)


def _difference(key: str, saved: Any, current: Any) -> str:
    return msg("preflight.resume.difference", "{setting}: {saved} in the state, {current} in this run",
               setting=_label(key), saved=_shown(key, saved), current=_shown(key, current))


def record_mismatches(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """'--network_dim: 8 in the state, 4 in this run' for each option that differs."""
    if saved.get("method") != current.get("method"):
        return [_difference("method", saved.get("method"), current.get("method"))]
    differences = []
    for key, value in current.items():
        if key not in saved or value is None or saved[key] is None:
            continue  # older records, or facts preflight could not establish
        if saved[key] != value:
            differences.append(_difference(key, saved[key], value))
    return differences


def mismatch_message(folder: str | Path, differences: list[str]) -> str:
    return msg(
        "preflight.resume.other_settings", "--resume {folder} was saved by a run with other settings, so it cannot "
        "continue this one: {differences}. Resume with the settings the state was saved with, or start without "
        "--resume (to start from the trained weights with new network settings, train a new network instead)",
        folder=folder, differences="; ".join(differences),
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
        found.append(msg(
            "run.resume.reshaped", "{count} of {total} weights have another shape (e.g. {key}: {saved} in the state, "
            "{current} in this run)", count=len(reshaped), total=len(current_keys), key=key,
            saved="x".join(map(str, _shape(saved[key]) or ())), current="x".join(map(str, _shape(current[key]) or ())),
        ))
    if missing:
        found.append(msg("run.resume.missing", "{count} weights of this run are not in the state (e.g. {key})",
                         count=len(missing), key=missing[0]))
    if unexpected:
        found.append(msg("run.resume.unexpected", "{count} weights in the state are not in this run (e.g. {key})",
                         count=len(unexpected), key=unexpected[0]))
    return found


def optimizer_differences(saved: Mapping[str, Any], optimizer: Any) -> list[str]:
    """The saved optimizer state against this run's optimizer: number of parameter groups, and the
    settings each group holds (another optimizer type has other ones: SGD has no betas, AdamW no momentum)."""
    saved_groups = saved.get("param_groups")
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(saved_groups, list) or groups is None:
        return []
    if len(saved_groups) != len(groups):
        return [msg("run.resume.optimizer_groups", "the optimizer has {saved} parameter groups in the state, "
                    "{current} in this run", saved=len(saved_groups), current=len(groups))]
    for saved_group, group in zip(saved_groups, groups, strict=True):
        saved_keys, keys = set(saved_group) - {"params"}, set(group) - {"params"}
        only_saved, only_here = sorted(saved_keys - keys)[:3], sorted(keys - saved_keys)[:3]
        if only_saved and only_here:  # one-sided: a setting an optimizer adds as it steps, not another type
            return [msg("run.resume.optimizer_type", "the optimizer is another type (settings only in the state: "
                        "{saved}; only in this run: {current})", saved=", ".join(only_saved),
                        current=", ".join(only_here))]
    return []


def same_settings_hint() -> str:
    return msg("run.resume.same_settings_hint", "Resume with the settings the state was saved with, or start without "
               "--resume.")


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
            msg("run.resume.optimizer_mismatch", "--resume {folder} does not fit this run: {differences}. The state "
                "was saved with another --optimizer_type (or other --network_args/learning-rate groups)",
                folder=folder, differences="; ".join(differences)),
            hint=msg("run.resume.optimizer_hint", "Resume with the optimizer the state was saved with, or start "
                     "without --resume."),
        )


def check_state_objects(folder: str | Path, objects: list[Any]) -> None:
    """Raise ResumeMismatch when the state's saved objects do not fit the objects this run registered."""
    folder = Path(folder)
    for index, obj in enumerate(objects):
        path = folder / f"custom_checkpoint_{index}.pkl"
        if not path.is_file():
            raise ResumeMismatch(
                msg("run.resume.object_missing", "--resume {folder} holds no {file}: the state was saved by a run with "
                    "fewer trained objects (e.g. without --ema), so it cannot continue this one", folder=folder,
                    file=path.name),
                hint=same_settings_hint(),
            )
        saved = _load(path)
        if not isinstance(saved, Mapping):
            continue
        differences = shape_differences(saved, obj.state_dict())
        if differences:
            raise ResumeMismatch(
                msg("run.resume.weights_mismatch", "--resume {folder} does not fit this run: {differences}. The state "
                    "was saved with other network or model settings (--network_dim, --network_alpha, conv_dim/algo in "
                    "--network_args, --network_module, the text encoder/U-Net options, or another base model)",
                    folder=folder, differences="; ".join(differences)),
                hint=same_settings_hint(),
            )
