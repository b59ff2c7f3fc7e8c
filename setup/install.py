"""Install pinned requirements into the running virtual environment, only when they changed.

Used by setup/setup.sh and setup/setup.bat (run with the venv's own Python), so the logic lives
once for every OS. Each requirements file gets a stamp in `<venv>/.stamps/`: the sha256 of the
file's text, the torch index and the Python version. A second run with nothing changed installs
nothing and prints nothing.

TORCH_INDEX_URL (environment): where torch comes from, e.g. a CUDA, ROCm or CPU wheel index of
PyTorch's. Unset means PyPI (CUDA builds on Linux, CPU builds on Windows/macOS); gui.bat sets a
CUDA index by default on Windows.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

DEFAULT_STAMP_DIR = Path(sys.prefix) / ".stamps"


def requirement_key(path: Path, torch_index: str) -> str:
    digest = hashlib.sha256()
    digest.update(path.read_bytes())
    digest.update(torch_index.encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def pinned_torch(path: Path) -> str | None:
    match = re.search(r"^torch==(\S+)", path.read_text(), flags=re.MULTILINE)
    return match.group(1) if match else None


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", *args]
    subprocess.run(command, check=True)


def install(path: Path, stamp_dir: Path = DEFAULT_STAMP_DIR) -> bool:
    """Install one requirements file if its stamp is stale; return True when it installed."""
    torch_index = os.environ.get("TORCH_INDEX_URL", "")
    key = requirement_key(path, torch_index)
    stamp = stamp_dir / f"{path.name}.sha256"
    if stamp.exists() and stamp.read_text().strip() == key:
        return False
    print(f"Installing {path.name} into {sys.prefix} (first run or changed; this can take minutes)...")
    torch_version = pinned_torch(path)
    if torch_index and torch_version:
        # torch first, from the chosen index; `torch==X` in the file then matches `X+cuNNN`.
        pip(f"torch=={torch_version}", "--index-url", torch_index)
    pip("-r", str(path))
    stamp_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key + "\n")
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Install requirements files into this venv when changed.")
    parser.add_argument("requirements", nargs="+", type=Path)
    parser.add_argument("--stamp-dir", type=Path, default=DEFAULT_STAMP_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        for path in args.requirements:
            install(path, args.stamp_dir)
    except subprocess.CalledProcessError as error:
        print(f"pip failed (exit {error.returncode}); see the messages above.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
