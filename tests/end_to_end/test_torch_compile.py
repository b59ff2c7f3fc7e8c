"""--torch_compile / --dynamo_backend and accelerate's dynamo setting, on the CPU."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .helpers import base_flags, make_images, run_trainer, trainer_env

STEPS = ("--max_train_steps", "3", "--network_dim", "4", "--network_train_unet_only")


@pytest.fixture(scope="module")
def one_bucket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One image size: the U-Net is compiled once, not again for each bucket's shape."""
    root = tmp_path_factory.mktemp("compile-data") / "train"
    make_images(root / "2_sks dog", 2)
    return root


@pytest.fixture(scope="module")
def eager_losses(tiny, one_bucket, tmp_path_factory) -> dict[int, float]:
    result = run_trainer("train_network", *base_flags(tiny.get("sd15").path, one_bucket,
                                                      tmp_path_factory.mktemp("eager"), *STEPS))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.losses()


def test_aot_eager_trains_exactly_as_eager(tiny, one_bucket, tmp_path, eager_losses) -> None:
    result = run_trainer("train_network", *base_flags(tiny.get("sd15").path, one_bucket, tmp_path, *STEPS,
                                                      "--torch_compile", "--dynamo_backend", "aot_eager"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "compiling the U-Net with torch.compile(backend='aot_eager')" in result.stderr
    assert result.losses() == eager_losses
    assert (tmp_path / "tiny.safetensors").is_file()


def test_inductor_on_the_cpu_is_checked_and_warned_about(tiny, one_bucket, tmp_path) -> None:
    """Inductor itself (kernels built with a C++ compiler) trains in tests/cuda/test_cuda_compile.py, on the
    GPU users compile for: here it would spend ~170 s compiling the tiny U-Net for what aot_eager already
    shows of this trainer's wiring. The CPU run is checked and warned about before training."""
    result = run_trainer("train_network", *base_flags(tiny.get("sd15").path, one_bucket, tmp_path, *STEPS,
                                                      "--torch_compile", "--preflight"))
    if shutil.which("g++") or shutil.which("clang++"):
        assert result.returncode == 0, result.stdout[-3000:]
        assert "--torch_compile on the CPU: measured slower" in result.stdout, result.stdout[-3000:]
    else:  # inductor needs a C++ compiler on the CPU: refused up front, with what to install
        assert result.returncode == 1 and "needs a C++ compiler" in result.stdout, result.stdout[-3000:]


def test_accelerate_dynamo_setting_is_honoured(tiny, one_bucket, tmp_path, monkeypatch, eager_losses) -> None:
    """`accelerate launch --dynamo_backend X` reaches the trainer as this variable; it must not be ignored."""
    monkeypatch.setenv("ACCELERATE_DYNAMO_BACKEND", "AOT_EAGER")
    assert os.environ["ACCELERATE_DYNAMO_BACKEND"] == trainer_env()["ACCELERATE_DYNAMO_BACKEND"]
    result = run_trainer("train_network", *base_flags(tiny.get("sd15").path, one_bucket, tmp_path, *STEPS))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "compiling the U-Net with torch.compile(backend='aot_eager')" in result.stderr
    assert result.losses() == eager_losses


def test_a_backend_this_torch_lacks_is_refused_before_training(tiny, one_bucket, tmp_path) -> None:
    result = run_trainer("train_network", *base_flags(tiny.get("sd15").path, one_bucket, tmp_path, *STEPS,
                                                      "--torch_compile", "--dynamo_backend", "fx2trt"))
    assert result.returncode != 0
    assert "--dynamo_backend fx2trt is not available in this PyTorch" in result.stderr
    assert "inductor" in result.stderr  # the message lists what is available
    assert not result.of("step")
