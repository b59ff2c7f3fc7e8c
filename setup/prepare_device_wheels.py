"""Download the wheels the GPU checks need that the lent GPU machine lacks, into .whl/ (git-ignored).

    venv/bin/python setup/prepare_device_wheels.py [--dest .whl] [--limit-mib 64] [--margin-mib 4]
    venv/bin/python setup/prepare_device_wheels.py --simulate-env DIR   # a local venv shaped like the image

The device (docs/gpu-checks.md) is offline, with Python 3.12 and its image's packages
(benchmarks/lib/device_image.py). This fetches, for CPython 3.12 manylinux x86-64, the packages of
WANTED at the versions requirements.txt pins, then every Requires-Dist of theirs that the image
does not meet (at the version installed in this venv), and checks each requirement against the
image's package list. bitsandbytes is slimmed to the libraries the image's torch (CUDA 13.0) loads.
What travels per call is 64 MiB: the working tree (`git ls-files` plus untracked files git does not
ignore) and the carried `.whl/`. Groups of wheels are kept in WANTED's order while they fit under
the limit less a margin (other helpers' files may appear before the run); what does not fit is
removed and printed with the reason. `.whl/manifest.json` records the set and this checkout's commit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lib.device_image import PYTHON_VERSION, Need, judge, normalise, requires_dist  # noqa: E402

MIB = 1024 * 1024
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(39, 16, -1)] + ["manylinux2014_x86_64", "manylinux1_x86_64"]
# What the trainer and tests import that the image lacks (or has at another version), most needed first.
WANTED: list[tuple[str, str]] = [
    ("diffusers", "U-Net/VAE classes of every model; not in the image"),
    ("toml", "reads --config_file (backend/options/toml_lines.py); not in the image"),
    ("lycoris-lora", "--network_module lycoris.kohya; not in the image"),
    ("prodigyopt", "--optimizer_type Prodigy; not in the image"),
    ("bitsandbytes", "8-bit optimizers (AdamW8bit, the memory-saver benchmark); not in the image"),
    ("transformers", "the image has 5.17.0; requirements.txt pins 5.23.0, the version CI tests with. Its "
                     "requirements are met by the image (huggingface-hub 1.33.0, tokenizers 0.23.2, and the "
                     "same regex bound 5.17.0 has), so ours is carried when it fits"),
]
# Requires-Dist entries that are not imported on the device's Python 3.12.
NOT_NEEDED = {
    "importlib-metadata": "diffusers imports it only on Python < 3.8 (diffusers/utils/import_utils.py); "
                          "3.12 uses the standard library's importlib.metadata",
}
# bitsandbytes ships one library per CUDA/ROCm/XPU version (129 MB unpacked); the image's torch is
# built for CUDA 13.0, so only the CUDA 13 libraries and the CPU one are kept.
BNB_KEEP = ("bitsandbytes/libbitsandbytes_cuda13", "bitsandbytes/libbitsandbytes_cpu")


@dataclass
class Wheel:
    name: str
    version: str
    path: Path
    reason: str
    group: str  # the WANTED entry it is carried for
    slimmed_from: int | None = None
    needs: list[dict] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def pins(requirements: Path) -> dict[str, str]:
    """name -> version of every `name==version` line."""
    found = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[normalise(name)] = version.strip()
    return found


def local_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def download(spec: str, folder: Path) -> Path:
    """One wheel for the device's Python and platform; returns its path."""
    before = set(folder.glob("*.whl"))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
               PYTHON_VERSION, "--implementation", "cp", *[f"--platform={p}" for p in PLATFORMS], "-d", str(folder),
               "--quiet", spec]
    result = subprocess.run(command, capture_output=True, text=True)
    new = sorted(set(folder.glob("*.whl")) - before)
    if result.returncode != 0 or len(new) != 1:
        raise SystemExit(f"pip download {spec} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return new[0]


def wheel_metadata(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name).decode("utf-8")


def slim(path: Path, keep_prefixes: tuple[str, ...], family: str) -> int:
    """Rewrite the wheel without the members under `family` that no prefix keeps (RECORD updated);
    returns the original size."""
    original = path.stat().st_size
    temporary = path.with_suffix(".slim")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as target:
        dropped = {n for n in source.namelist() if n.startswith(family) and not n.startswith(keep_prefixes)}
        for info in source.infolist():
            if info.filename in dropped:
                continue
            data = source.read(info.filename)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode("utf-8").splitlines()
                data = ("\n".join(r for r in lines if r.split(",", 1)[0] not in dropped) + "\n").encode("utf-8")
            target.writestr(info, data)
    temporary.replace(path)
    return original


def tree_bytes() -> tuple[int, int]:
    """(tracked, untracked-not-ignored) bytes of the working tree, as the device call counts them."""
    def total(args: list[str]) -> int:
        out = subprocess.run(["git", "ls-files", "-z", *args], cwd=REPO, capture_output=True, check=True).stdout
        return sum((REPO / p).stat().st_size for p in out.decode().split("\0") if p and (REPO / p).is_file())

    return total([]), total(["--others", "--exclude-standard"])


def gather(staging: Path, pinned: dict[str, str]) -> list[Wheel]:
    """Download WANTED and whatever they need that the image lacks, each checked against the image."""
    wheels: list[Wheel] = []
    queue = [(name, reason, name) for name, reason in WANTED]
    while queue:
        name, reason, group = queue.pop(0)
        key = normalise(name)
        if any(w.name == key for w in wheels):
            continue
        version = pinned.get(key) or local_version(name)
        path = download(f"{name}=={version}" if version else name, staging)
        wheel = Wheel(key, path.name.split("-")[1], path, reason, group)
        if key == "bitsandbytes":
            wheel.slimmed_from = slim(path, BNB_KEEP, "bitsandbytes/libbitsandbytes_")
        wheels.append(wheel)
        carried = {w.name: w.version for w in wheels}
        queued = {normalise(n) for n, _, _ in queue}
        for requirement in requires_dist(wheel_metadata(path)):
            need = judge(requirement, carried, NOT_NEEDED)
            if need.status == "missing" and need.name in queued:
                need = Need(need.requirement, need.name, "carried", "carried too (listed in WANTED)")
            wheel.needs.append(asdict(need))
            if need.status in ("missing", "conflict"):
                queue.append((need.name, f"needed by {key} ({need.requirement}; {need.detail})", group))
    return wheels


def fit(wheels: list[Wheel], budget: int) -> tuple[list[Wheel], list[tuple[Wheel, str]]]:
    """Keep whole groups in WANTED order while they fit in `budget` bytes."""
    kept: list[Wheel] = []
    left: list[tuple[Wheel, str]] = []
    used = 0
    for group, _ in WANTED:
        members = [w for w in wheels if w.group == group]
        size = sum(w.size for w in members)
        if used + size <= budget:
            kept += members
            used += size
        else:
            why = f"{size / MIB:.1f} MiB does not fit: {(budget - used) / MIB:.1f} MiB of the budget left"
            left += [(w, why) for w in members]
    return kept, left


def commit() -> dict[str, str | bool | None]:
    def git(*args: str) -> str | None:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dest", type=Path, default=REPO / ".whl")
    parser.add_argument("--limit-mib", type=float, default=64.0, help="what travels per device call")
    parser.add_argument("--margin-mib", type=float, default=4.0, help="kept free for files added before the run")
    parser.add_argument("--simulate-env", type=Path, default=None,
                        help="instead: make a venv at DIR with only this venv's packages the image has too")
    args = parser.parse_args(argv)
    if args.simulate_env:
        from benchmarks.lib.device_image import simulate_image

        image, besides = simulate_image(args.simulate_env)
        print(f"{args.simulate_env}: {len(image)} of the image's packages linked from {sys.prefix}, and their "
              f"requirements the image has under other versions or names: {', '.join(besides) or 'none'}")
        return 0
    tracked, untracked = tree_bytes()
    budget = int(args.limit_mib * MIB) - tracked - untracked - int(args.margin_mib * MIB)
    with tempfile.TemporaryDirectory(prefix="device-wheels-") as staging:
        wheels = gather(Path(staging), pins(REPO / "requirements.txt"))
        kept, left = fit(wheels, budget)
        args.dest.mkdir(exist_ok=True)
        for old in args.dest.glob("*.whl"):
            old.unlink()
        for wheel in kept:
            wheel.path = Path(shutil.move(str(wheel.path), args.dest / wheel.path.name))
    manifest = {
        **commit(), "python": PYTHON_VERSION, "tree_tracked_bytes": tracked, "tree_untracked_bytes": untracked,
        "limit_bytes": int(args.limit_mib * MIB), "margin_bytes": int(args.margin_mib * MIB),
        "wheels": [{"file": w.path.name, "name": w.name, "version": w.version, "bytes": w.size, "reason": w.reason,
                    "slimmed_from_bytes": w.slimmed_from, "needs": w.needs} for w in kept],
        "left_out": [{"name": w.name, "version": w.version, "why": why} for w, why in left],
        "not_needed": NOT_NEEDED,
    }
    (args.dest / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    carried = sum(w.size for w in kept)
    print(f"working tree: {tracked / MIB:.2f} MiB tracked + {untracked / MIB:.2f} MiB untracked, not ignored")
    for w in kept:
        slimmed = f" (slimmed from {w.slimmed_from / MIB:.1f} MiB)" if w.slimmed_from else ""
        print(f"  carried {w.path.name:<60} {w.size / MIB:7.2f} MiB{slimmed}")
        for need in w.needs:
            print(f"      needs {need['requirement']:<40} {need['status']}: {need['detail']}")
    for w, why in left:
        print(f"  LEFT OUT {w.name}=={w.version}: {why}")
    for name, why in NOT_NEEDED.items():
        print(f"  not carried {name}: {why}")
    total = tracked + untracked + carried
    print(f"travels: {total / MIB:.2f} MiB of {args.limit_mib:.0f} MiB ({carried / MIB:.2f} MiB wheels in {args.dest})")
    unknown = sorted({n["name"] for w in kept for n in w.needs if n["status"] == "device-unknown-version"})
    if unknown:
        print(f"in the image at versions not recorded here (checked there at run time): {', '.join(unknown)}")
    return 1 if any(n["status"] == "conflict" for w in kept for n in w.needs) else 0


if __name__ == "__main__":
    sys.exit(main())
