"""Images/s and peak memory of latent caching, through the trainer's own caching code.

    python benchmarks/cache_latents.py [--arch sd15|sdxl] [--size tiny|full] [--resolution PX]
        [--images N] [--vae-batch-size N] [--mixed-precision no|fp16|bf16] [--to-disk] [--device auto|cpu|cuda]

The options are parsed and checked by the trainer (`backend.options`, `preflight.build_plan`), the
model is loaded and placed as for training (`model_setup.prepare_model`), and the timed part is
`run_setup.prepare_data`, which calls `backend.data.latent_cache.cache_latents` with the VAE
encoder exactly as a `--cache_latents` run does. One JSON line:
{"benchmark": "cache_latents", "images": ..., "seconds": ..., "images_per_s": ..., "peak_rss_gib": ...}
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lib.datasets import make_dataset  # noqa: E402
from benchmarks.lib.memory import RssSampler, gib, own_peak_rss  # noqa: E402
from benchmarks.lib.models import DEFAULT_CACHE, ensure_model, model_flags  # noqa: E402
from benchmarks.lib.output import emit, machine  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=("sd15", "sd2", "sdxl"), default="sd15")
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--resolution", type=int, default=None, help="default: 64 tiny, 512 SD / 1024 SDXL full")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--vae-batch-size", type=int, default=1)
    parser.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=None,
                        help="the VAE's dtype as in training (default: bf16 on CUDA, no on CPU)")
    parser.add_argument("--to-disk", action="store_true", help="--cache_latents_to_disk (files are removed first)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_CACHE)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from backend.options import parse_command_line
    from backend.training.deepspeed_plugin import DeepSpeedConfig
    from backend.training.model_setup import ModelConfig, PlacementConfig, prepare_model
    from backend.training.preflight import build_plan
    from backend.training.progress import ProgressReporter
    from backend.training.run_setup import (
        PRECISION_DTYPES,
        AcceleratorConfig,
        LatentCacheConfig,
        make_accelerator,
        prepare_data,
    )
    from backend.training.trackers import TrackerConfig

    cuda = torch.cuda.is_available()
    precision = args.mixed_precision or ("bf16" if cuda else "no")
    resolution = args.resolution or (64 if args.size == "tiny" else 1024 if args.arch == "sdxl" else 512)
    work = args.work_dir.resolve()
    path, tokenizers = ensure_model(args.size, args.arch, work, lambda m: print(m, file=sys.stderr))
    data = make_dataset(work / f"data-{resolution}px-{args.images}", args.images, resolution)
    for stale in data.rglob("*.npz"):
        stale.unlink()
    command = "sdxl_train_network" if args.arch == "sdxl" else "train_network"
    trainer_argv = [
        *model_flags(path, tokenizers, args.arch), "--train_data_dir", str(data), "--output_dir",
        str(work / "out" / "cache_latents"), "--resolution", f"{resolution},{resolution}", "--caption_extension",
        ".txt", "--mixed_precision", precision, "--vae_batch_size", str(args.vae_batch_size),
        "--cache_latents", *(["--cache_latents_to_disk"] if args.to_disk else []),
    ]
    options = parse_command_line(command, trainer_argv)
    plan = build_plan(options, command)
    if not plan.ok:
        print("error: " + "; ".join(plan.errors), file=sys.stderr)
        return 1
    accelerator = make_accelerator(AcceleratorConfig.from_args(options), TrackerConfig.from_args(options),
                                   DeepSpeedConfig.from_args(options), command)
    spec, components, _ = prepare_model(
        ModelConfig.from_args(options), PlacementConfig.from_args(options), plan, accelerator,
        PRECISION_DTYPES[precision], train_text_encoders=not options.network_train_unet_only,
    )
    sampler = RssSampler().start()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    group = prepare_data(LatentCacheConfig.from_args(options), options.seed, plan, accelerator, spec, components,
                         ProgressReporter(enabled=False))
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    cached = sum(len(d.latents) + len(d.latent_files) for d in group.datasets)
    result = {
        "arch": args.arch, "size": args.size, "device": str(accelerator.device), "resolution": resolution,
        "vae_batch_size": args.vae_batch_size, "mixed_precision": precision, "to_disk": args.to_disk,
        "images": cached, "seconds": round(seconds, 3), "images_per_s": round(cached / seconds, 3),
        "peak_rss_gib": gib(own_peak_rss()), "peak_rss_caching_gib": gib(sampler.stop()),
    }
    if cuda:
        result["cuda_caching_max_allocated_gib"] = gib(torch.cuda.max_memory_allocated())
    emit("cache_latents", **result, **machine())
    return 0 if cached == args.images else 1


if __name__ == "__main__":
    sys.exit(main())
