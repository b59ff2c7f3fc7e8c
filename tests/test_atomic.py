from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from backend.atomic import (
    atomic_folder,
    atomic_path,
    atomic_save_safetensors,
    atomic_torch_save,
    atomic_write,
    atomic_write_json,
)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_text_and_binary(tmp_path: Path) -> None:
    with atomic_write(tmp_path / "a.toml") as f:
        f.write("x = 1\n")
    with atomic_write(tmp_path / "sub" / "b.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "a.toml").read_text() == "x = 1\n"
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "sub") == []


def test_failed_write_leaves_no_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    with pytest.raises(RuntimeError, match="boom"), atomic_write(target, "wb") as f:
        f.write(b"partial")
        raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(ValueError), atomic_write(target) as f:
        f.write("new, half written")
        raise ValueError
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_replaces_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_text("old")
    atomic_write_json({"current_step": 3, "name": "日本"}, target)
    assert json.loads(target.read_text(encoding="utf-8")) == {"current_step": 3, "name": "日本"}


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_permissions_follow_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "f.txt") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_path_requires_the_writer_to_create_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "never.bin"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_safetensors_and_torch_save(tmp_path: Path) -> None:
    from safetensors import safe_open

    tensors = {"lora_unet_x.alpha": torch.tensor(4.0), "w": torch.arange(6.0).reshape(2, 3)}
    atomic_save_safetensors(tensors, tmp_path / "m.safetensors", {"ss_network_dim": "4"})
    with safe_open(str(tmp_path / "m.safetensors"), "pt") as f:
        assert f.metadata() == {"ss_network_dim": "4"}
        assert torch.equal(f.get_tensor("w"), tensors["w"])

    atomic_torch_save({"w": tensors["w"]}, tmp_path / "m.ckpt")
    assert torch.equal(torch.load(tmp_path / "m.ckpt")["w"], tensors["w"])
    assert _leftovers(tmp_path) == []


def test_failed_safetensors_save_cleans_up(tmp_path: Path) -> None:
    with pytest.raises(Exception):  # noqa: B017  (safetensors raises its own error types)
        atomic_save_safetensors({"w": torch.zeros(2)}, tmp_path / "m.safetensors", {"bad": 1})  # type: ignore[dict-item]
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_appears_whole_and_replaces_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_folder(target) as folder:
        assert folder.parent == tmp_path and folder.name.startswith(".model.") and folder.name.endswith(".tmp")
        (folder / "weights.bin").write_bytes(b"one")
        assert not target.exists()
    assert (target / "weights.bin").read_bytes() == b"one"
    with atomic_folder(target) as folder:
        (folder / "weights.bin").write_bytes(b"two")
    assert [p.name for p in target.iterdir()] == ["weights.bin"]
    assert (target / "weights.bin").read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_failed_atomic_folder_keeps_the_old_folder_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_folder(target) as folder:
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (target / "keep.txt").read_text() == "old"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_folder_files_get_the_plain_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_folder(tmp_path / "m") as folder:
            private = folder / "sub" / "w.safetensors"
            private.parent.mkdir()
            private.write_bytes(b"x")
            private.chmod(0o600)  # what safetensors' save_file creates
    finally:
        os.umask(old)
    assert (tmp_path / "m" / "sub" / "w.safetensors").stat().st_mode & 0o777 == 0o644


def test_atomic_folder_names_are_the_ones_leftover_cleanup_knows(tmp_path: Path) -> None:
    """A run killed inside the block, or between moving the old folder aside and the new one into
    place, leaves names that backend/training/leftovers.py removes, or restores when they hold the
    only copy."""
    from backend.training.leftovers import is_leftover, remove_leftovers

    target = tmp_path / "model"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(target) as folder:
        assert is_leftover(folder)
        raise RuntimeError
    # The state between the two renames: the old folder moved aside, the new one not yet in place.
    aside = tmp_path / ".model.0123abcd.old"
    aside.mkdir()
    os.replace(target, aside / "model")
    killed = tmp_path / ".model.4567cdef.tmp"
    killed.mkdir()
    found = remove_leftovers([tmp_path], min_age_s=0)
    assert (target / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert set(found.removed) == {aside, killed}
