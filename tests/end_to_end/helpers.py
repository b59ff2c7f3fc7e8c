"""Running the training commands as a user would, and reading what they report."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from backend.training.progress import parse_progress_line
from tests.forked_commands import run_module, run_module_until

REPO = Path(__file__).resolve().parents[2]


@dataclass
class TrainerResult:
    returncode: int
    events: list[dict]
    stdout: str
    stderr: str

    def of(self, event: str) -> list[dict]:
        return [e for e in self.events if e["event"] == event]

    def losses(self) -> dict[int, float]:
        return {e["step"]: e["loss"] for e in self.of("step")}


_ENV_AT_START = dict(os.environ)  # before any test changes it (the fork server's: tests/forked_commands.py)


def trainer_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    # Offline, like a user without network access: nothing may be fetched from a hub. No telemetry either, as
    # in the GUI (Gradio sets HF_HUB_DISABLE_TELEMETRY=True there), so that the GUI's runs in the browser tests
    # are forked from the same server as these (tests/gui/test_browser.py's gui_server).
    return {**(os.environ if base is None else base), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
            "HF_HUB_DISABLE_TELEMETRY": "True"}  # fmt: skip


def run_trainer(command: str, *args: str, timeout: int = 600) -> TrainerResult:
    """`python -m backend.<command> ARGS` (in a fork of a process with torch & co. imported: tests/forked_commands.py)."""
    result = run_module(f"backend.{command}", args, trainer_env(), REPO, timeout, server_env=trainer_env(_ENV_AT_START))
    events = [e for e in map(parse_progress_line, result.stdout.splitlines()) if e is not None]
    return TrainerResult(result.returncode, events, result.stdout, result.stderr)


def make_images(folder: Path, count: int, sizes: list[tuple[int, int]] | None = None, caption: str | None = "sks dog",
                seed: int = 0, caption_extension: str = ".txt") -> list[Path]:
    """Random-noise images with smooth structure (so the VAE sees something), and captions."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        w, h = (sizes or [(64, 64)])[i % len(sizes or [(64, 64)])]
        coarse = rng.random((max(1, h // 16), max(1, w // 16), 3))
        image = Image.fromarray((coarse * 255).astype("uint8")).resize((w, h), Image.BILINEAR)
        path = folder / f"img{i}.png"
        image.save(path)
        if caption is not None:
            path.with_suffix(caption_extension).write_text(f"{caption}, picture {i}")
        paths.append(path)
    return paths


def base_flags(model: Path, train_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--pretrained_model_name_or_path", str(model), "--train_data_dir", str(train_dir),
        "--output_dir", str(out), "--output_name", "tiny", "--resolution", "64",
        "--caption_extension", ".txt", "--max_data_loader_n_workers", "0", "--seed", "7", *extra,
    ]


def run_until_state_then_kill(command: str, args: list[str]) -> list[dict]:
    """Start training and SIGKILL it as soon as its first state is reported complete."""
    events = []

    def state_written(line: str) -> bool:
        event = parse_progress_line(line)
        if event is not None:
            events.append(event)
        return event is not None and event["event"] == "checkpoint" and event["kind"] == "state"

    returncode = run_module_until(f"backend.{command}", args, trainer_env(), state_written,
                                  server_env=trainer_env(_ENV_AT_START))  # fmt: skip
    assert returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return events


def listening_model(base: Path, folder: Path) -> Path:
    """A copy of the tiny SD 1.5 with its cross-attention values scaled up. The tiny model's random cross-attention
    barely listens to the text (the loss moves by under 0.1 % between any two prompts), so nothing learned through
    the text (Textual Inversion's vectors, LECO's prompt differences) could be measured; scaled, the prompt moves it
    by a few percent."""
    import shutil

    import torch
    from diffusers import UNet2DConditionModel

    shutil.copytree(base, folder)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    with torch.no_grad():
        for name, module in unet.named_modules():
            if name.endswith("attn2"):
                module.to_v.weight.mul_(200)
    unet.save_pretrained(folder / "unet")
    return folder
