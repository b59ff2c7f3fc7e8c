"""Single .safetensors files are read tensor by tensor (backend/models/files.py), cast as they are read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from backend.models.errors import ModelFileError
from backend.models.files import read_checkpoint


@pytest.fixture()
def mixed_file(tmp_path: Path) -> Path:
    tensors = {
        "f32": torch.randn(3, 5),
        "f16": torch.randn(7).half(),
        "bf16": torch.randn(2, 2, 2).bfloat16(),
        "f64": torch.randn(4, dtype=torch.float64),
        "i64": torch.arange(6).reshape(2, 3),
        "u8": torch.tensor([1, 2, 255], dtype=torch.uint8),
        "flag": torch.tensor([True, False]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
        "fp8": torch.tensor([0.5, -1.0]).to(torch.float8_e4m3fn),
    }
    path = tmp_path / "mixed.safetensors"
    save_file(tensors, str(path), metadata={"note": "hello"})
    return path


def test_reads_what_safetensors_reads(mixed_file: Path) -> None:
    expected = load_file(str(mixed_file))
    tensors, metadata = read_checkpoint(mixed_file)
    assert metadata == {"note": "hello"}
    assert tensors.keys() == expected.keys()
    for name, tensor in expected.items():
        assert tensors[name].dtype == tensor.dtype, name
        assert tensors[name].shape == tensor.shape, name
        assert torch.equal(tensors[name].reshape(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8)), name


def test_casts_floating_point_tensors_only(mixed_file: Path) -> None:
    expected = load_file(str(mixed_file))
    tensors, _ = read_checkpoint(mixed_file, dtype=torch.float32)
    for name, tensor in expected.items():
        if tensor.is_floating_point():
            assert tensors[name].dtype == torch.float32, name
            assert torch.equal(tensors[name], tensor.float()), name
        else:
            assert tensors[name].dtype == tensor.dtype and torch.equal(tensors[name], tensor), name


def test_truncated_file_is_reported(mixed_file: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(mixed_file.read_bytes()[:-8])
    size = mixed_file.stat().st_size
    with pytest.raises(ModelFileError, match=rf"cut\.safetensors: the file ends after {size - 8:,} of {size:,} bytes: "
                       "the download or copy was cut short; download or copy it again"):
        read_checkpoint(cut)
