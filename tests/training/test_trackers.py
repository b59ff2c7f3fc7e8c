"""The trackers' options as sd-scripts' prepare_accelerator / init_trackers use them: wandb's run name and login,
--log_tracker_config's start arguments, --log_config's values (no secrets, no paths), and the preflight checks.
wandb is faked where the code imports it (it need not be installed); TensorBoard's real files are checked in
tests/end_to_end/test_validation.py (--log_config, --log_tracker_config on its logged run)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from backend.options import parse_args
from backend.training.trackers import (
    TrackerConfig,
    init_trackers,
    logged_config,
    prepare_wandb,
    tracker_problems,
)

KEY = "wandb-SECRET-0123456789"


def options(*flags: str, command: str = "train_network"):
    return parse_args(command, ["--pretrained_model_name_or_path", "m", "--output_dir", "o", *flags])


class CapturedAccelerator:
    is_main_process = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    def init_trackers(self, project_name: str, config: Any = None, init_kwargs: Any = None) -> None:
        self.calls.append((project_name, config, init_kwargs))


def test_wandb_logs_in_with_the_key_and_gets_the_run_name(monkeypatch, tmp_path: Path) -> None:
    logins: list[dict] = []
    monkeypatch.setitem(sys.modules, "wandb", SimpleNamespace(login=lambda **kw: logins.append(kw)))
    monkeypatch.delenv("WANDB_DIR", raising=False)
    args = options("--log_with", "wandb", "--wandb_run_name", "first try", "--wandb_api_key", KEY,
                   "--log_tracker_name", "project")
    config = TrackerConfig.from_args(args)
    prepare_wandb(config, str(tmp_path / "run"))
    assert logins == [{"key": KEY}]
    assert Path(os.environ["WANDB_DIR"]) == tmp_path / "run"  # wandb's files in the run's log folder
    accelerator = CapturedAccelerator()
    init_trackers(accelerator, config, "train_network", logged_config(args, "train_network"))
    assert accelerator.calls == [("project", None, {"wandb": {"name": "first try"}})]


def test_the_tracker_file_replaces_the_run_name(tmp_path: Path) -> None:
    path = tmp_path / "trackers.toml"
    path.write_text('[wandb]\nentity = "team"\ntags = ["sdxl"]\n[tensorboard]\nflush_secs = 5\n')
    config = TrackerConfig.from_args(options("--log_with", "all", "--logging_dir", "logs", "--wandb_run_name", "x",
                                             "--log_tracker_config", str(path)))
    accelerator = CapturedAccelerator()
    init_trackers(accelerator, config, "train_network", None)
    assert accelerator.calls == [("train_network", None, {"wandb": {"entity": "team", "tags": ["sdxl"]},
                                                          "tensorboard": {"flush_secs": 5}})]


def test_the_logged_config_has_no_secrets_and_no_paths() -> None:
    args = options("--log_config", "--wandb_api_key", KEY, "--huggingface_token", "hf_SECRET", "--logging_dir", "logs",
                   "--network_args", "conv_dim=4", "--learning_rate", "3e-4")
    values = logged_config(args, "train_network")
    assert values is not None and values["learning_rate"] == 3e-4 and values["log_config"] is True
    assert values["network_args"] == "['conv_dim=4']"  # trackers take no lists: as text, as sd-scripts does
    for left_out in ("wandb_api_key", "huggingface_token", "logging_dir", "output_dir", "pretrained_model_name_or_path"):
        assert left_out not in values
    assert "learning_rate_te1" not in values  # only the options of the command
    assert logged_config(options(), "train_network") is None


def test_preflight_says_what_fails_or_does_nothing(monkeypatch, tmp_path: Path) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # no wandb
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "run"\n')
    errors, warnings = tracker_problems(TrackerConfig.from_args(options("--log_with", "all",
                                                                        "--log_tracker_config", str(bad))))
    assert errors == [
        "--log_with all writes TensorBoard logs: it needs --logging_dir",
        "--log_with wandb: the wandb package is not installed (pip install wandb)",
        f"--log_tracker_config {bad}: name must be inside a table named after its tracker, e.g. [wandb] or "
        "[tensorboard]",
    ]
    errors, warnings = tracker_problems(TrackerConfig.from_args(options("--wandb_run_name", "x", "--log_config")))
    assert errors == []
    assert warnings == ["--wandb_run_name: no effect without --log_with wandb or all",
                        "--log_config: no effect without a tracker (--logging_dir or --log_with)"]
    missing = tmp_path / "missing.toml"
    errors, _ = tracker_problems(TrackerConfig.from_args(options("--logging_dir", "logs",
                                                                 "--log_tracker_config", str(missing))))
    assert errors == [f"--log_tracker_config {missing}: no such file"]
