"""Models to benchmark on: the tiny test models, or full-size architectures with random weights.

Full size means the shipped diffusers configs of the real model (`backend/families/<package>/configs/<arch>`),
built with random weights, so every layer has its real shape and the measured work is the real
work; nothing is downloaded. Either kind is written once as an original-layout single file in fp16
(`<cache>/<size>-<arch>/<size>-<arch>.safetensors`) with a tokenizer folder laid out as sd-scripts'
`--tokenizer_cache_dir` expects (our tiny CLIP BPE tokenizer: prompts cost the same 77 tokens), and
reused by later runs. A `complete.json` beside it marks a finished write. On a CUDA machine the
random weights are drawn on the GPU (seconds instead of minutes for SDXL's 3.5 billion).

    python -m benchmarks.lib.models full sdxl [--work-dir DIR]   # build one ahead of the runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO / "benchmarks" / ".cache"
SIZES = ("tiny", "full")


def _ensure_repo_on_path() -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def model_flags(path: Path, tokenizer_cache_dir: Path, arch: str) -> list[str]:
    """Trainer flags that load this model (sd-scripts spells them the same)."""
    flags = ["--pretrained_model_name_or_path", str(path), "--tokenizer_cache_dir", str(tokenizer_cache_dir)]
    if arch in ("sd2", "sd2-v"):
        flags.append("--v2")
    return flags


def _build_full(arch: str, folder: Path) -> Path:
    """Random-weight full-size model from the shipped configs, saved in fp16 (built in fp16 too, so
    an SDXL fits in memory twice over on a 24 GB machine; on the GPU where there is one)."""
    _ensure_repo_on_path()
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig

    from backend.families import declaration
    from backend.models.components import Components
    from backend.models.configs import load_arch_configs
    from backend.models.loading import text_encoder_class
    from backend.models.saving import save_components
    from backend.models.tokenizers import cache_folder
    from devtools.tiny_tokenizer import write_tiny_tokenizer

    configs = load_arch_configs(arch)
    cache = folder / "tokenizer_cache"
    tokenizers = [write_tiny_tokenizer(cache_folder(cache, hub.hub_id), hub.pad_with_bang)
                  for hub in declaration(configs.family).hub_tokenizers]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        with torch.random.fork_rng(devices=[]), device:
            torch.manual_seed(0)
            unet = UNet2DConditionModel.from_config(configs.unet).eval()
            vae = AutoencoderKL.from_config(configs.vae).eval()
            encoders = [text_encoder_class(c)(CLIPTextConfig.from_dict(c)).eval() for c in configs.text_encoders]
    finally:
        torch.set_default_dtype(previous)
    components = Components(configs.family, configs, unet, vae, encoders, tokenizers, source=f"random {arch}")
    return save_components(components, folder / f"full-{arch}.safetensors", dtype=torch.float16)


def _build_tiny(arch: str, folder: Path) -> Path:
    _ensure_repo_on_path()
    from devtools.make_tiny_model import make_tiny_model

    model = make_tiny_model(arch, folder, single_file=True, seed=1)
    target = folder / f"tiny-{arch}.safetensors"
    if model.path != target:
        shutil.move(str(model.path), target)
    return target


def ensure_model(size: str, arch: str, cache_dir: Path = DEFAULT_CACHE, log=print) -> tuple[Path, Path]:
    """(single file, tokenizer cache dir) of the `size` (`tiny` or `full`) `arch` model, built if missing."""
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; expected one of {', '.join(SIZES)}")
    folder = Path(cache_dir) / f"{size}-{arch}"
    path, tokenizers, marker = folder / f"{size}-{arch}.safetensors", folder / "tokenizer_cache", folder / "complete.json"
    if marker.is_file() and path.is_file() and tokenizers.is_dir():
        return path, tokenizers
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    log(f"building the {size} {arch} model with random weights in {folder} (once) ...")
    (_build_full if size == "full" else _build_tiny)(arch, folder)
    marker.write_text(json.dumps({"size": size, "arch": arch, "seconds": round(time.perf_counter() - start, 1)}))
    return path, tokenizers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a benchmark model once (reused by later runs).")
    parser.add_argument("size", choices=SIZES)
    parser.add_argument("arch")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path, _ = ensure_model(args.size, args.arch, args.work_dir.resolve(), lambda m: print(m, file=sys.stderr))
    print(json.dumps({"benchmark": "build_model", "size": args.size, "arch": args.arch, "path": str(path),
                      "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - start, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
