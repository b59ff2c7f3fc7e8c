"""sd-scripts' logging flags (library/utils.py setup_logging): --console_log_level, --console_log_file and
--console_log_simple, applied once the options are read.

The log goes to the file instead of stderr, as in sd-scripts; the progress lines (stdout) and the final
"error:" line (printed to stderr, not logged) stay on the console so a GUI or a shell still sees how the run
ends. Log lines here are plain text already, so --console_log_simple changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from backend.training.option_slice import OptionSlice

FORMAT = "%(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class ConsoleLogConfig(OptionSlice):
    console_log_level: str | None = None  # (train_video has no such flags: the defaults)
    console_log_file: str | None = None


def configure_console_log(config: ConsoleLogConfig) -> None:
    root = logging.getLogger()
    if config.console_log_level:
        root.setLevel(getattr(logging, config.console_log_level))
    if config.console_log_file:
        path = Path(config.console_log_file).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, mode="w", encoding="utf-8")
        handler.setFormatter(logging.Formatter(FORMAT))
        for old in root.handlers[:]:
            root.removeHandler(old)
        root.addHandler(handler)
