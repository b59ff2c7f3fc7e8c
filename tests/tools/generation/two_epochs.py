"""A tiny SD 1.5 LoRA run that saved two epochs (`tiny-000001.safetensors`, `tiny.safetensors`): what the
generation tests compare in an epoch x weight grid (here and in the Generate page's browser test)."""

from __future__ import annotations

from pathlib import Path

from tests.end_to_end.helpers import TrainerResult, base_flags, make_images, run_trainer


def train_two_epochs(model: Path, root: Path) -> tuple[Path, TrainerResult]:
    """The run's output folder under `root` and the finished run (its stdout holds the progress lines)."""
    make_images(root / "train" / "1_sks dog", 2)
    out = root / "out"
    result = run_trainer("train_network", *base_flags(
        model, root / "train", out, "--max_train_epochs", "2", "--save_every_n_epochs", "1",
        "--learning_rate", "5e-2", "--network_dim", "8", "--network_alpha", "8", "--train_batch_size", "2",
    ))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result
