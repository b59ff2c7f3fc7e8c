"""The experiment trackers (TensorBoard, wandb) a run logs to, set up as sd-scripts' train_util does it
(prepare_accelerator, init_trackers, get_sanitized_config_or_none).

--log_with picks them (TensorBoard by default when --logging_dir is set); wandb logs in with --wandb_api_key
first and keeps its files under the run's log folder; --log_tracker_config gives each tracker's start its keyword
arguments (it replaces --wandb_run_name, as in sd-scripts); --log_config logs the run's options, secrets and
paths left out. The checks (`tracker_problems`) run in preflight, without torch.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import toml

from backend.messages import msg
from backend.options.schema import accepted_options
from backend.training.option_slice import OptionSlice

# Paths sd-scripts leaves out of a logged config (they can name the user, their folders and data), besides secrets.
PATH_OPTIONS = ("pretrained_model_name_or_path", "vae", "tokenizer_cache_dir", "train_data_dir",
                "conditioning_data_dir", "reg_data_dir", "output_dir", "logging_dir")
WANDB = ("wandb", "all")


@dataclass(frozen=True)
class TrackerConfig(OptionSlice):
    logging_dir: str | None
    log_with: str | None
    log_prefix: str | None
    log_tracker_name: str | None
    wandb_run_name: str | None = None
    wandb_api_key: str | None = None  # a secret
    log_tracker_config: str | None = None
    log_config: bool = False

    @property
    def trackers(self) -> str | None:
        """accelerate's log_with: --log_with, else tensorboard when --logging_dir is set (sd-scripts)."""
        return self.log_with or ("tensorboard" if self.logging_dir else None)

    @property
    def uses_wandb(self) -> bool:
        return self.trackers in WANDB


def log_folder(config: TrackerConfig) -> str | None:
    """This run's log folder: --logging_dir/<--log_prefix><time stamp>."""
    if not config.logging_dir:
        return None
    return str(Path(config.logging_dir) / f"{config.log_prefix or ''}{time.strftime('%Y%m%d%H%M%S')}")


def prepare_wandb(config: TrackerConfig, folder: str | None) -> None:
    """Before the Accelerator: wandb's files go to the run's log folder, and --wandb_api_key logs in."""
    if not config.uses_wandb:
        return
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
        os.environ["WANDB_DIR"] = folder
    if config.wandb_api_key is not None:
        import wandb  # (preflight refused the run without it)

        wandb.login(key=config.wandb_api_key)


def init_kwargs(config: TrackerConfig) -> dict[str, dict[str, Any]]:
    """Each tracker's start arguments: the --log_tracker_config file's tables, else wandb's run name."""
    if config.log_tracker_config is not None:
        return dict(toml.load(config.log_tracker_config))
    return {"wandb": {"name": config.wandb_run_name}} if config.wandb_run_name else {}


def logged_config(args: argparse.Namespace, command: str) -> dict[str, Any] | None:
    """--log_config: the value of every option `command` takes, as trackers take them (bool, str, int, float,
    None; the rest as text), secrets and paths left out; None without --log_config."""
    if not getattr(args, "log_config", False):
        return None
    values: dict[str, Any] = {}
    for name, option in accepted_options(command).items():
        if option.secret or name in PATH_OPTIONS or not hasattr(args, name):
            continue
        value = getattr(args, name)
        plain = value is None or isinstance(value, bool | str | int | float)
        values[name] = value if plain else str(value)
    return values


def init_trackers(accelerator: Any, config: TrackerConfig, command: str, run_config: dict[str, Any] | None) -> None:
    """accelerate's trackers started (main process), with the run's config when --log_config is given."""
    if accelerator.is_main_process:
        accelerator.init_trackers(config.log_tracker_name or command, config=run_config,
                                  init_kwargs=init_kwargs(config))


def tracker_problems(config: TrackerConfig) -> tuple[list[str], list[str]]:
    """(errors, warnings) before the run: what sd-scripts would fail on later, and options that do nothing."""
    errors: list[str] = []
    warnings: list[str] = []
    if config.log_with in ("tensorboard", "all") and not config.logging_dir:
        errors.append(msg("preflight.tracker.logging_dir", "--log_with {value} writes TensorBoard logs: it needs "
                          "--logging_dir", value=config.log_with))
    if config.uses_wandb and importlib.util.find_spec("wandb") is None:
        errors.append(msg("preflight.wandb_missing", "--log_with wandb: the wandb package is not installed (pip "
                          "install wandb)"))
    if config.log_tracker_config is not None:
        errors += _tracker_file_problems(config.log_tracker_config)
    if not config.uses_wandb:
        unused = [f"--{name}" for name in ("wandb_run_name", "wandb_api_key") if getattr(config, name)]
        if unused:
            warnings.append(msg("preflight.tracker.wandb_unused", "{flags}: no effect without --log_with wandb or all",
                                flags=", ".join(unused)))
    elif config.wandb_run_name and config.log_tracker_config:
        warnings.append(msg("preflight.tracker.run_name_replaced", "--wandb_run_name: not used, --log_tracker_config "
                            "replaces it (as in sd-scripts); set name under [wandb] in that file"))
    if config.trackers is None and (config.log_config or config.log_tracker_config):
        flags = [flag for flag, on in (("--log_config", config.log_config),
                                       ("--log_tracker_config", config.log_tracker_config)) if on]
        warnings.append(msg("preflight.tracker.none", "{flags}: no effect without a tracker (--logging_dir or "
                            "--log_with)", flags=", ".join(flags)))
    return errors, warnings


def _tracker_file_problems(path: str) -> list[str]:
    """The --log_tracker_config file must be TOML whose top-level values are tables (one per tracker)."""
    try:
        tables = toml.load(path)
    except FileNotFoundError:
        return [msg("preflight.tracker.file_missing", "--log_tracker_config {path}: no such file", path=path)]
    except (OSError, UnicodeDecodeError) as exc:
        return [msg("preflight.tracker.file_unreadable", "--log_tracker_config {path}: cannot be read ({error})",
                    path=path, error=exc)]
    except toml.TomlDecodeError as exc:
        return [msg("preflight.tracker.file_invalid", "--log_tracker_config {path}: not valid TOML ({error})",
                    path=path, error=exc)]
    loose = [key for key, value in tables.items() if not isinstance(value, dict)]
    if loose:
        return [msg(
            "preflight.tracker.file_not_tables", "--log_tracker_config {path}: {keys} must be inside a table named "
            "after its tracker, e.g. [wandb] or [tensorboard]", path=path, keys=", ".join(loose),
        )]
    return []
