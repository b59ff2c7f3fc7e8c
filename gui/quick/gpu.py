"""The card's memory, asked from `nvidia-smi` (never torch: the GUI process does not import it)."""

from __future__ import annotations

import shutil
import subprocess


def gpu_memory_mib() -> int | None:
    """The largest NVIDIA GPU's memory in MiB; None without nvidia-smi or when it does not answer."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run([smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    sizes = [int(line.strip()) for line in done.stdout.splitlines() if line.strip().isdigit()]
    return max(sizes) if done.returncode == 0 and sizes else None
