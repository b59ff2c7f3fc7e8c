"""What the lent GPU machine (`nvidia-h200`) already has, and checks of carried wheels against it.

The machine is bare and offline: Python 3.12 with the packages of its image, which
/work/.library/device/KINDS.md lists ("Python packages already there"; versions where a session's
`pip list` showed them). Whatever the trainer needs beyond that travels as wheels in `.whl/`
(setup/prepare_device_wheels.py) and is installed there with `pip install --no-deps --target`.
Nothing here imports torch: the wheel preparation runs in any Python.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

PYTHON_VERSION = "3.12"
# Marker environment of the device's Python (3.12.3 on x86-64 Linux) for evaluating Requires-Dist.
MARKER_ENV = {"python_version": PYTHON_VERSION, "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}

# The image's packages (normalised names); a version where one session's pip list showed it, else None.
_KNOWN = {
    "accelerate": "1.15.0", "huggingface-hub": "1.33.0", "numpy": "2.5.2", "safetensors": "0.8.0",
    "sentencepiece": "0.2.2", "tokenizers": "0.23.2", "torch": "2.11.0", "transformers": "5.17.0",
    "onnxruntime": "1.30.0", "onnx": "1.23.1", "triton": "3.6.0", "torchvision": "0.26.0", "jax": "0.11.2",
}
_NAMES = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server
tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq
torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions
typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp"""
# safetensors is in the pip list row but not in the package list: both are taken.
DEVICE_PACKAGES: dict[str, str | None] = {name: _KNOWN.get(name) for name in _NAMES.split()} | _KNOWN


def normalise(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Need:
    """One Requires-Dist line of a carried wheel, judged against what the device will have."""

    requirement: str
    name: str
    status: str  # "carried", "device", "device-unknown-version", "conflict", "missing", "not-needed"
    detail: str = ""


def applies(requirement: Requirement) -> bool:
    """Whether a requirement applies on the device's Python without extras."""
    return requirement.marker is None or Marker(str(requirement.marker)).evaluate(MARKER_ENV)


def requires_dist(metadata_text: str) -> list[Requirement]:
    """The Requires-Dist lines of a METADATA text that apply on the device (extras left out)."""
    found = []
    for line in metadata_text.splitlines():
        if line.startswith("Requires-Dist:"):
            requirement = Requirement(line.split(":", 1)[1].strip())
            if applies(requirement):
                found.append(requirement)
    return found


def judge(requirement: Requirement, carried: dict[str, str], not_needed: dict[str, str],
          device: dict[str, str | None] = DEVICE_PACKAGES) -> Need:
    """Where a requirement will be met: by a carried wheel, by the image, or nowhere yet."""
    name = normalise(requirement.name)
    text = str(requirement)
    if name in carried:
        ok = requirement.specifier.contains(carried[name], prereleases=True)
        return Need(text, name, "carried" if ok else "conflict", f"carried {carried[name]}")
    if name in not_needed:
        return Need(text, name, "not-needed", not_needed[name])
    if name in device:
        version = device[name]
        if version is None:
            return Need(text, name, "device-unknown-version", "in the image; its version is checked there at run time")
        ok = requirement.specifier.contains(version, prereleases=True)
        return Need(text, name, "device" if ok else "conflict", f"image has {version}")
    return Need(text, name, "missing", "neither carried nor in the image")


def installed_problems(site: Path, not_needed: dict[str, str] | None = None) -> list[str]:
    """Run-time check on the device: every Requires-Dist of each distribution installed under `site`
    (the carried wheels) is met by what this Python imports, carried or from the image."""
    not_needed = not_needed or {}
    problems = []
    for info in sorted(site.glob("*.dist-info")):
        dist = metadata.Distribution.at(info)
        for line in dist.requires or []:
            requirement = Requirement(line)
            if not applies(requirement) or normalise(requirement.name) in not_needed:
                continue
            try:
                version = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{dist.metadata['Name']} needs {requirement}: not installed")
                continue
            if not requirement.specifier.contains(Version(version), prereleases=True):
                problems.append(f"{dist.metadata['Name']} needs {requirement}: found {version}")
    return problems




def simulate_image(target: Path) -> tuple[list[str], list[str]]:
    """A venv at `target` that holds only those of this Python's distributions that the image has too
    (linked, not copied), so the device's layout (image + carried wheels on PYTHONPATH) can be
    tried here. The image's packages are consistent among themselves there; here a linked one may
    be of another version that needs something the image lists under another name, so their own
    requirements are linked too. Returns (image packages linked, requirements linked besides)."""
    import subprocess

    if target.exists():
        raise FileExistsError(f"{target} exists; remove it or name another folder")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    site = target / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    local = {normalise(d.metadata["Name"] or ""): d for d in metadata.distributions()}
    wanted = [name for name in local if name in DEVICE_PACKAGES]
    linked: list[str] = []
    while wanted:
        name = wanted.pop()
        if name in linked or name not in local:
            continue
        dist = local[name]
        for top in sorted({Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}):
            source, link = Path(str(dist.locate_file(top))), site / top
            if source.exists() and not link.exists():
                link.symlink_to(source)
        linked.append(name)
        wanted += [normalise(Requirement(r).name) for r in dist.requires or [] if applies(Requirement(r))]
    image = sorted(n for n in linked if n in DEVICE_PACKAGES)
    return image, sorted(n for n in linked if n not in DEVICE_PACKAGES)
