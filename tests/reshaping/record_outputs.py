"""Fingerprints of what the trainer writes, to prove that a reshaping changed nothing (issue 16).

For the tiny SD 1.5, SD 2 v-prediction and SDXL models, one LoRA run (`train_network` /
`sdxl_train_network`) and one fine-tune run (`fine_tune` / `sdxl_train`) at a fixed seed; each saved
file is reduced to a SHA-256 over its tensors (names, dtypes, shapes, bytes, in name order) and its
`ss_*`/`modelspec.*` metadata without the values that name the time or the machine's paths.

    venv/bin/python -m tests.reshaping.record_outputs --write   # before the reshaping, on main
    venv/bin/python -m tests.reshaping.record_outputs           # after: exit 1 on any difference

Not part of the suite: float results are bit-identical only on the same CPU, torch build and thread
count, so the baseline (`baseline.json`, which records the machine it was made on) is compared on
the machine that wrote it. The trainers run with one thread, for the same reason; the fine-tune
metadata is prepared in this process with the shell's thread settings, so compare from a shell
without OMP_NUM_THREADS (as the baseline was made): with it set, the fine-tunes' latents differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASELINE = Path(__file__).with_name("baseline.json")
ARCHS = ("sd15", "sd2-v", "sdxl")
# Metadata that names the moment or the machine, not what was trained.
VOLATILE_METADATA = {
    "ss_training_started_at", "ss_training_finished_at", "ss_session_id", "modelspec.date",
    "ss_output_name", "ss_sd_model_name", "ss_new_sd_model_hash", "ss_sd_model_hash", "sshs_model_hash",
    "sshs_legacy_hash", "ss_dataset_dirs", "ss_datasets", "ss_tag_frequency", "ss_training_comment",
}


def tensor_fingerprint(path: Path) -> dict[str, object]:
    import torch
    from safetensors import safe_open

    digest = hashlib.sha256()
    with safe_open(str(path), framework="pt") as handle:
        names = sorted(handle.keys())
        metadata = handle.metadata() or {}
        for name in names:
            tensor = handle.get_tensor(name).contiguous()
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    kept = {k: v for k, v in sorted(metadata.items()) if k not in VOLATILE_METADATA}
    return {"tensors": len(names), "sha256": digest.hexdigest(), "metadata": kept}


def run(command: str, *args: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", f"backend.{command}", *args], cwd=REPO,
                            capture_output=True, text=True, env=env, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"{command} failed:\n{result.stderr[-3000:]}")


def record(root: Path) -> dict[str, dict[str, object]]:
    sys.path.insert(0, str(REPO))
    import torch

    from devtools.make_tiny_model import make_tiny_model
    from tests.end_to_end.finetune_helpers import ft_flags, prepare_metadata
    from tests.end_to_end.helpers import base_flags, make_images

    images = root / "images"
    make_images(images / "2_sks", 4)
    results: dict[str, dict[str, object]] = {}
    for arch in ARCHS:
        model = make_tiny_model(arch, root / "models" / arch, seed=1)
        model_flags = model.trainer_flags()[2:]
        sdxl = arch == "sdxl"
        out = root / arch / "lora"
        run("sdxl_train_network" if sdxl else "train_network",
            *base_flags(model.path, images, out, "--network_module", "networks.lora", "--max_train_steps", "3",
                        "--learning_rate", "1e-2", "--train_batch_size", "2", *model_flags))
        results[f"{arch}/lora"] = tensor_fingerprint(out / "tiny.safetensors")
        torch.manual_seed(0)  # prepare_buckets_latents samples the VAE from the global RNG, as sd-scripts does
        folder, metadata = prepare_metadata(root / arch / "meta", model.path, ["--v2"] if arch.startswith("sd2") else [])
        out = root / arch / "finetune"
        run("sdxl_train" if sdxl else "fine_tune",
            *ft_flags(model.path, folder, metadata, out, "--max_train_steps", "2", "--save_model_as", "safetensors",
                      *model_flags))
        results[f"{arch}/finetune"] = tensor_fingerprint(out / "tiny.safetensors")
    return results


def machine() -> dict[str, str]:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
            "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record the baseline instead of comparing with it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = record(Path(tmp))
    if args.write:
        BASELINE.write_text(json.dumps({"machine": machine(), "outputs": results}, indent=1) + "\n")
        print(f"wrote {BASELINE}")
        return 0
    baseline = json.loads(BASELINE.read_text())
    if baseline["machine"] != machine():
        print(f"note: the baseline was made on {baseline['machine']}, this is {machine()}")
    differ = [name for name in baseline["outputs"] if baseline["outputs"][name] != results.get(name)]
    for name in differ:
        print(f"DIFFERS: {name}\n  was {baseline['outputs'][name]}\n  now {results.get(name)}")
    print("identical" if not differ else f"{len(differ)} of {len(baseline['outputs'])} outputs differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
