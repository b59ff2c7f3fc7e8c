"""--torch_compile with inductor on CUDA: the U-Net (with the LoRA hooked in) compiled to Triton
kernels trains as eager does. The slowest test of the layer (graph capture and kernel compilation
of a tiny U-Net: tens of seconds), so it is marked slow; `-m "cuda and not slow"` leaves it out.
The compiled run is a subprocess: a crash in a compiler cannot take the rest of the layer with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.cuda.support import assert_finite, finite_losses, train_here
from tests.end_to_end.helpers import base_flags, make_images, run_trainer

STEPS = ("--max_train_steps", "3", "--network_dim", "4", "--network_train_unet_only", "--mixed_precision", "bf16")


@pytest.fixture(scope="module")
def one_bucket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One image size: the U-Net is compiled once, not again for each bucket's shape."""
    root = tmp_path_factory.mktemp("compile-data") / "train"
    make_images(root / "2_sks dog", 2)
    return root


@pytest.mark.slow
@pytest.mark.cuda_only
def test_inductor_trains_as_eager_on_the_gpu(tiny, one_bucket, tmp_path, device) -> None:
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed: inductor cannot generate CUDA kernels (preflight says so to users)")
    model = tiny.get("sd15").path
    eager = train_here("train_network", base_flags(model, one_bucket, tmp_path / "eager", *STEPS), device).ok().result
    compiled = run_trainer("train_network", *base_flags(model, one_bucket, tmp_path / "compiled", *STEPS,
                                                        "--torch_compile"), timeout=540)
    assert compiled.returncode == 0, compiled.stderr[-4000:]
    assert "compiling the U-Net with torch.compile(backend='inductor')" in compiled.stderr
    assert "--torch_compile on the CPU" not in compiled.stderr  # it ran on the GPU
    assert finite_losses(compiled) == pytest.approx(finite_losses(eager), rel=2e-2)  # fused kernels round differently
    assert_finite(tmp_path / "compiled" / "tiny.safetensors")
