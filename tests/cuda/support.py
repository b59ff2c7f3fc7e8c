"""The CUDA layer's tools: which device it tests, training runs in this process on that device, and
reading what a run left behind (files, placement of modules, GPU memory).

Runs go through `run_command`, the trainer's own entry point, in this process rather than a
subprocess: a tiny run then costs about a second instead of the interpreter and library start-up,
which keeps the whole layer within a few minutes on a GPU, and the test can look at the
`TrainingRun` the trainer built (where the VAE is, which dtype the U-Net's weights have).
accelerate's process-wide state is reset after every run, so runs with different precisions follow
each other as separate processes would.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.end_to_end.helpers import TrainerResult

DEVICE_ENV = "KOHYA_TEST_DEVICE"
ALLOCATION = 512  # the CUDA caching allocator rounds every block up to this many bytes


def chosen_device() -> torch.device | None:
    """The device this layer tests: KOHYA_TEST_DEVICE (cuda, cpu), else CUDA when present, else None."""
    value = os.environ.get(DEVICE_ENV, "").strip().lower()
    if value not in ("", "cuda", "cpu"):
        raise ValueError(f"{DEVICE_ENV}={value!r}: use cuda, cpu, or leave it unset (CUDA when torch sees a GPU)")
    if value == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if value == "cuda":
        raise ValueError(f"{DEVICE_ENV}=cuda, but torch {torch.__version__} (CUDA build {torch.version.cuda}) "
                         "sees no CUDA GPU")
    return None


@dataclass
class Trained:
    result: TrainerResult
    run: object | None  # the TrainingRun build_run made (None if the run stopped before); its
    # accelerator is unusable afterwards (accelerate's state was reset)
    device_type: str | None  # where it trained

    @property
    def returncode(self) -> int:
        return self.result.returncode

    def ok(self) -> Trained:
        """Fail with the run's log tail unless it exited 0."""
        assert self.result.returncode == 0, self.result.stderr[-4000:]
        return self


def _reset_process_state(device: torch.device) -> None:
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@contextlib.contextmanager
def on_device(device: torch.device) -> Iterator[None]:
    """accelerate picks CUDA when it sees a GPU; a CPU run on a GPU machine asks for the CPU."""
    forced = device.type == "cpu" and torch.cuda.is_available()
    with mock.patch.dict(os.environ, {"ACCELERATE_USE_CPU": "1"} if forced else {}):
        yield


def train_here(command: str, argv: list[str], device: torch.device,
               observe: Callable[[object], None] | None = None) -> Trained:
    """`python -m backend.<command> <argv>`, run in this process on `device`. `observe` is called with
    the TrainingRun right after build_run made it (model placed, caches filled), before the first step."""
    from backend.training import run_setup
    from backend.training.command import run_command
    from backend.training.progress import parse_progress_line

    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)  # pytest's handlers stay; this one keeps INFO lines for the test
    root = logging.getLogger()
    level = root.level
    built: list[object] = []
    ran_on: list[str] = []
    real_build_run = run_setup.build_run

    def build_and_observe(*args: object, **kwargs: object) -> object:
        run = real_build_run(*args, **kwargs)
        built.append(run)
        ran_on.append(run.accelerator.device.type)  # type: ignore[attr-defined]
        if observe is not None:
            observe(run)
        return run

    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with on_device(device), mock.patch.object(run_setup, "build_run", build_and_observe), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = run_command(command, [str(a) for a in argv])
            except SystemExit as exit_:
                code = int(exit_.code or 0)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        _reset_process_state(device)
    events = [e for e in map(parse_progress_line, out.getvalue().splitlines()) if e is not None]
    trained = Trained(TrainerResult(code, events, out.getvalue(), err.getvalue()), built[0] if built else None,
                      ran_on[0] if ran_on else None)
    assert trained.device_type in (None, device.type), f"the run trained on {trained.device_type}, not {device.type}"
    return trained


@contextlib.contextmanager
def built_run(command: str, argv: list[str], device: torch.device) -> Iterator[object]:
    """The TrainingRun as build_run makes it for these options (model on the device, caches filled,
    optimizer built), without training; accelerate's state is reset afterwards."""
    from backend.options import parse_command_line
    from backend.training.preflight import build_plan
    from backend.training.run_setup import build_run

    with on_device(device):
        args = parse_command_line(command, [str(a) for a in argv])
        plan = build_plan(args, command)
        assert plan.ok, plan.errors
        try:
            yield build_run(args, command, plan)
        finally:
            _reset_process_state(device)


# --- what a run left behind ------------------------------------------------------------------------
def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_finite(path: Path) -> None:
    bad = [key for key, value in tensors(path).items() if value.is_floating_point() and not torch.isfinite(value).all()]
    assert not bad, f"{path.name}: non-finite values in {bad[:5]}"


def differs(first: Path, second: Path) -> bool:
    """Whether any tensor of two files of the same keys differs (the optimizer moved the weights)."""
    a, b = tensors(first), tensors(second)
    assert a.keys() == b.keys()
    return any(not torch.equal(a[key], b[key]) for key in a)


def finite_losses(result: TrainerResult) -> list[float]:
    losses = list(result.losses().values())
    assert losses and all(loss is not None and math.isfinite(loss) for loss in losses), losses
    return losses


def image_varies(path: Path) -> bool:
    """A sample that is not one flat colour (NaN latents decode to a black image)."""
    with Image.open(path) as image:
        return float(np.asarray(image.convert("RGB"), dtype=np.float32).std()) > 0.0


def write_prompts(folder: Path, line: str = "sks dog --w 64 --h 64 --s 2 --d 5") -> Path:
    path = folder / "prompts.txt"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(line + "\n")
    return path


# --- modules and GPU memory ------------------------------------------------------------------------
def devices_of(module: torch.nn.Module) -> set[str]:
    return {t.device.type for t in (*module.parameters(), *module.buffers())}


def cuda_bytes(modules: Iterable[torch.nn.Module]) -> int:
    """The bytes the CUDA caching allocator holds for these modules' parameters and buffers (each
    tensor rounded up as the allocator rounds it); shared tensors counted once."""
    seen: dict[int, int] = {}
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.device.type == "cuda":
                storage = tensor.untyped_storage()
                seen[storage.data_ptr()] = math.ceil(storage.nbytes() / ALLOCATION) * ALLOCATION
    return sum(seen.values())


@contextlib.contextmanager
def tf32_off() -> Iterator[None]:
    """float32 matmuls and convolutions in full float32 (cuDNN allows TF32 for convolutions by default),
    for comparisons of GPU and CPU results."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def warm_up(device: torch.device) -> None:
    """One matmul and convolution, forward and backward, in each precision: cuBLAS keeps a workspace per
    handle in the caching allocator, and memory checks must not see it appear mid-run."""
    if device.type != "cuda":
        return
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        x = torch.randn(8, 4, 16, 16, device=device, requires_grad=True)
        w = torch.randn(8, 4, 3, 3, device=device, requires_grad=True)
        m = torch.randn(16, 16, device=device, requires_grad=True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            out = torch.nn.functional.conv2d(x, w, padding=1) @ m
        out.float().sum().backward()
    torch.cuda.synchronize()
