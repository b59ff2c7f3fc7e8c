"""What the machine and its Python hold, as one JSON line: the first part of the GPU checks.

    python -m benchmarks.lib.device_report

Versions and the file each package was imported from (a carried wheel under $DEVICE_SITE, or the
image), whether the carried wheels' requirements are met (benchmarks/lib/device_image.py), the
wheel manifest (its commit), the GPU (name, capability, memory, bf16), and two quick functional
checks that the memory-saver benchmarks rely on: a float8 round trip and one AdamW8bit step on
the device. Every check catches its own error, so the line is always written.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "diffusers", "transformers", "accelerate", "safetensors", "bitsandbytes", "lycoris", "toml",
            "prodigyopt", "numpy", "huggingface_hub", "tokenizers", "PIL", "peft", "psutil", "pytest")


def attempt(check) -> Any:
    try:
        return check()
    except Exception as error:  # a report: every failure is a finding, none stops the others
        return {"error": f"{type(error).__name__}: {error}"[:500]}


def package(name: str) -> dict[str, Any]:
    module = importlib.import_module(name)
    return {"version": getattr(module, "__version__", None), "file": getattr(module, "__file__", None)}


def gpu() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"available": False}
    props = torch.cuda.get_device_properties(0)
    return {"available": True, "name": props.name, "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 1024**3, 1), "multiprocessors": props.multi_processor_count,
            "bf16": torch.cuda.is_bf16_supported(), "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "device_count": torch.cuda.device_count()}


def float8_round_trip() -> dict[str, Any]:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(256, 256, device=device)
    back = x.to(torch.float8_e4m3fn).to(torch.float32)
    return {"device": device, "relative_error": round(float((back - x).norm() / x.norm()), 5)}


def adamw8bit_step() -> dict[str, Any]:
    import bitsandbytes.optim
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    weight = torch.nn.Parameter(torch.randn(4096, 64, device=device))
    before = weight.detach().clone()
    optimizer = bitsandbytes.optim.AdamW8bit([weight], lr=1e-3)
    (weight**2).sum().backward()
    optimizer.step()
    state = optimizer.state[weight]
    return {"device": device, "moved": bool((weight.detach() != before).any()),
            "state_dtypes": sorted({str(v.dtype) for v in state.values() if hasattr(v, "dtype")})}


def carried() -> dict[str, Any]:
    from benchmarks.lib.device_image import installed_problems

    site = Path(os.environ.get("DEVICE_SITE", "/tmp/site"))
    manifest_path = REPO / ".whl" / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    not_needed = manifest.get("not_needed", {})
    return {"site": str(site), "installed": sorted(p.name for p in site.glob("*.dist-info")) if site.is_dir() else [],
            "requirement_problems": installed_problems(site, not_needed) if site.is_dir() else ["no site folder"],
            "manifest_commit": manifest.get("commit"), "manifest_dirty": manifest.get("dirty"),
            "manifest_wheels": [w["file"] for w in manifest.get("wheels", [])]}


def main() -> int:
    report = {
        "benchmark": "env", "python": platform.python_version(), "executable": sys.executable,
        "platform": platform.platform(), "cpu_count": os.cpu_count(), "pythonpath": os.environ.get("PYTHONPATH"),
        "packages": {name: attempt(lambda name=name: package(name)) for name in PACKAGES},
        "gpu": attempt(gpu), "carried": attempt(carried),
        "float8": attempt(float8_round_trip), "adamw8bit": attempt(adamw8bit_step),
    }
    print(json.dumps(report, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
