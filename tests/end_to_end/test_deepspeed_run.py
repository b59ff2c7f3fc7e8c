"""A --deepspeed run (sd-scripts' flags, no accelerate config) on one CPU process: DeepSpeed's ZeRO-2 engine trains
the fine-tune and the model is saved. Runs only where the deepspeed package is installed (setup does not install
it; tests/training/test_deepspeed_plugin.py covers the flags and preflight without it)."""

from __future__ import annotations

import pytest

from .helpers import base_flags, run_trainer

pytest.importorskip("deepspeed")


def test_deepspeed_flags_train_and_save(tiny, train_dir, tmp_path):
    result = run_trainer("train_db", *base_flags(tiny.get("sd15").path, train_dir, tmp_path, "--deepspeed",
                                                 "--max_train_steps", "2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DeepSpeed ZeRO stage 2 (--deepspeed), offload_optimizer_device: none" in result.stderr
    assert sorted(result.losses()) == [1, 2]
    assert (tmp_path / "tiny.safetensors").is_file()
