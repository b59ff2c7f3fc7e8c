"""The CUDA test layer: every path of the trainer that behaves differently on a CUDA GPU, on the tiny models.

Every test collected under tests/cuda carries the `cuda` marker (added here, so none can miss it):
`pytest -m cuda` runs just this layer, and a plain run collects it and skips it without a GPU.

Where it runs is chosen by KOHYA_TEST_DEVICE:
- unset: on the GPU when torch sees one; without one every test skips ("needs CUDA"), before any
  fixture runs, so a CPU machine pays only the collection.
- `cuda`: the same, but a missing GPU is an error, not a wall of skips: a GPU check that skipped
  everything must not pass.
- `cpu`: the tests whose feature exists on the CPU (bf16 autocast, caching, sampling, resume, 8-bit
  optimizers, ...) run on the CPU, so the layer's own code is exercised without a GPU; tests of
  CUDA-only features (marked `cuda_only`: fp16 with its loss scaler, SDPA kernels, pinned memory,
  inductor/triton, GPU-vs-CPU parity) skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.cuda.support import DEVICE_ENV, chosen_device
from tests.end_to_end.conftest import train_dir  # noqa: F401 (the end-to-end tests' tiny dataset, shared)

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the marker must be there when it looks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if HERE in Path(str(item.path)).resolve().parents]
    if not ours:
        return
    try:
        device = chosen_device()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    for item in ours:
        item.add_marker(pytest.mark.cuda)
        if device is None:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
        elif device.type == "cpu" and item.get_closest_marker("cuda_only"):
            item.add_marker(pytest.mark.skip(reason=f"needs CUDA ({DEVICE_ENV}=cpu runs only the tests whose "
                                                    "feature exists on the CPU)"))


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device the layer tests (collection skipped everything when there is none)."""
    chosen = chosen_device()
    assert chosen is not None
    return chosen
