"""The NVIDIA GPUs of this machine, asked from `nvidia-smi` in a subprocess (the GUI process never imports torch).

Asked once per GUI process: the Memory panel's card chooser and Quick LoRA's card size start from it.
"""

from __future__ import annotations

import functools
import subprocess

NVIDIA_SMI_TIMEOUT_S = 5
MIB = 1024**2


@functools.lru_cache(maxsize=1)
def detected_gpus() -> tuple[tuple[str, int], ...]:
    """(name, total bytes) of each NVIDIA GPU; none when nvidia-smi is missing, fails or does not answer."""
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ()
    found = []
    for line in result.stdout.splitlines() if result.returncode == 0 else []:
        name, _, mib = line.rpartition(",")
        try:
            found.append((name.strip(), int(float(mib)) * MIB))
        except ValueError:
            continue
    return tuple(found)


def largest_gpu_mib() -> int | None:
    """The largest GPU's memory in MiB (as nvidia-smi counts it); None without one."""
    sizes = [size for _, size in detected_gpus()]
    return max(sizes) // MIB if sizes else None
