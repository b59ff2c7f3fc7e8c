"""Preparing the wheels for the GPU machine, offline: requirement judgement, slimming, fitting the limit."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

from benchmarks.lib.device_image import installed_problems, judge, requires_dist
from tests.benchmarks.conftest import REPO

spec = importlib.util.spec_from_file_location("prepare_device_wheels", REPO / "setup" / "prepare_device_wheels.py")
prepare = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = prepare  # its dataclasses look their module up while being defined
spec.loader.exec_module(prepare)


def test_requirements_judged_against_the_image_and_what_is_carried() -> None:
    text = ("Metadata-Version: 2.1\nName: x\nRequires-Dist: torch<3,>=2.4\nRequires-Dist: huggingface-hub>=9\n"
            "Requires-Dist: toml\nRequires-Dist: einops\nRequires-Dist: nosuchpkg\nRequires-Dist: importlib_metadata\n"
            'Requires-Dist: pytest; extra == "test"\nRequires-Dist: oldthing; python_version < "3.8"\n')
    needs = {r.name: judge(r, {"toml": "0.10.2"}, {"importlib-metadata": "unused on 3.12"})
             for r in requires_dist(text)}
    assert set(needs) == {"torch", "huggingface-hub", "toml", "einops", "nosuchpkg", "importlib_metadata"}
    assert needs["torch"].status == "device" and needs["huggingface-hub"].status == "conflict"
    assert needs["toml"].status == "carried" and needs["einops"].status == "device-unknown-version"
    assert needs["nosuchpkg"].status == "missing" and needs["importlib_metadata"].status == "not-needed"
    assert judge(Requirement("toml>=1"), {"toml": "0.10.2"}, {}).status == "conflict"


def make_wheel(path: Path, members: dict[str, bytes]) -> Path:
    record = "".join(f"{name},sha256=x,{len(data)}\n" for name, data in members.items()) + "pkg-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("pkg-1.0.dist-info/RECORD", record)
    return path


def test_slim_drops_other_libraries_and_their_record_lines(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "pkg-1.0-py3-none-any.whl", {
        "bitsandbytes/__init__.py": b"", "bitsandbytes/libbitsandbytes_cuda118.so": b"x" * 5000,
        "bitsandbytes/libbitsandbytes_cuda130.so": b"y" * 10, "bitsandbytes/libbitsandbytes_cpu.so": b"z"})
    original = wheel.stat().st_size
    assert prepare.slim(wheel, prepare.BNB_KEEP, "bitsandbytes/libbitsandbytes_") == original
    slim_size = wheel.stat().st_size
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        record = archive.read("pkg-1.0.dist-info/RECORD").decode()
    assert "bitsandbytes/libbitsandbytes_cuda118.so" not in names and "cuda118" not in record
    assert {"bitsandbytes/libbitsandbytes_cuda130.so", "bitsandbytes/libbitsandbytes_cpu.so"} <= names
    assert "cuda130" in record and slim_size < original


def test_fit_keeps_whole_groups_in_order(tmp_path: Path) -> None:
    def wheel(name: str, group: str, size: int) -> object:
        path = tmp_path / f"{name}.whl"
        path.write_bytes(b"x" * size)
        return prepare.Wheel(name, "1", path, "", group)

    wheels = [wheel("diffusers", "diffusers", 100), wheel("toml", "toml", 10), wheel("bitsandbytes", "bitsandbytes", 500),
              wheel("transformers", "transformers", 200), wheel("dep", "transformers", 50)]
    kept, left = prepare.fit(wheels, 400)
    assert [w.name for w in kept] == ["diffusers", "toml", "transformers", "dep"]
    assert [w.name for w, _ in left] == ["bitsandbytes"] and "does not fit" in left[0][1]


def test_pins_and_installed_check(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\ntorch==2.13.0\nlycoris_lora==4.1.3  # LyCORIS\nplain\n")
    assert prepare.pins(requirements) == {"torch": "2.13.0", "lycoris-lora": "4.1.3"}
    site = tmp_path / "site"
    info = site / "carried-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: carried\nVersion: 1.0\n"
                                   "Requires-Dist: packaging>=1\nRequires-Dist: nosuchpkg\nRequires-Dist: toml>=99\n")
    problems = installed_problems(site)
    assert len(problems) == 2 and "nosuchpkg" in problems[0] and "toml>=99" in problems[1]


def test_working_tree_measure_counts_tracked_files() -> None:
    tracked, untracked = prepare.tree_bytes()
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert len(listed) > 50 and tracked >= sum((REPO / p).stat().st_size for p in listed[:50]) and untracked >= 0
