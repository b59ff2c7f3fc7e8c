"""Seconds per optimizer step, samples/s, peak memory and (on CUDA) TFLOP/s and MFU of real training.

    python benchmarks/train_step.py [--method lora|finetune] [--arch sd15|sdxl] [--size tiny|full]
        [--resolution PX] [--batch-size N] [--rank R] [--gradient-checkpointing]
        [--mixed-precision no|fp16|bf16] [--no-cache-latents] [--steps N] [--warmup N]
        [--device auto|cpu|cuda] [--peak-tflops T] [--runs N] [--work-dir DIR]

Runs the real training command (`backend.train_network`, `backend.sdxl_train_network`, or the
fine-tuning commands) in a child process on a generated dataset and reads the step times from the
trainer's own progress lines; see benchmarks/lib/trainer_run.py and trainer_child.py. `--size full`
builds the real architecture from the shipped configs with random weights (once, into the work
dir), so the shapes and the work are those of the real model. One JSON object per run on stdout:
{"benchmark": "train_step", "median_s": ..., "p90_s": ..., "samples_per_s": ..., "peak_rss_gib": ..., ...}

Besides the wall time per step (`median_s`, from the progress lines) each run reports the trainer
process's CPU time per step (`cpu_median_s`), on CUDA the GPU time per step from CUDA events
(`gpu_median_s`, and `mfu_gpu_time` against it), and the machine's load over the run (`load`:
foreign_cores = busy cores not ours; benchmarks/lib/load.py). With `--runs N` (N > 1) a last line
with `"summary": true` gives the figures of the quietest run and marks runs whose load differed.
`omp_wait_policy` names the OpenMP wait policy the trainer inherited (docs/gpu-checks.md says why).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lib import load  # noqa: E402
from benchmarks.lib.datasets import make_dataset, write_metadata  # noqa: E402
from benchmarks.lib.flops import compute_dtype, peak_tflops, utilisation  # noqa: E402
from benchmarks.lib.memory import gib  # noqa: E402
from benchmarks.lib.models import DEFAULT_CACHE, ensure_model, model_flags  # noqa: E402
from benchmarks.lib.output import emit, machine, median, percentile, skip  # noqa: E402
from benchmarks.lib.trainer_run import omp_wait_policy, run_trainer  # noqa: E402

COMMANDS = {  # (method, is SDXL) -> training command module under backend/
    ("lora", False): "train_network", ("lora", True): "sdxl_train_network",
    ("finetune", False): "fine_tune", ("finetune", True): "sdxl_train",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", choices=("lora", "finetune"), default="lora")
    parser.add_argument("--arch", choices=("sd15", "sd2", "sdxl"), default="sd15")
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny",
                        help="tiny test model, or the full-size architecture with random weights")
    parser.add_argument("--resolution", type=int, default=None,
                        help="square training resolution (default: 64 tiny; full: 128 on CPU, 512 SD / 1024 SDXL on CUDA)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--rank", type=int, default=8, help="network_dim = network_alpha (LoRA)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=None,
                        help="default: bf16 on CUDA, no on CPU")
    parser.add_argument("--no-cache-latents", dest="cache_latents", action="store_false",
                        help="encode every batch with the VAE instead of caching latents first")
    parser.add_argument("--unet-only", action="store_true",
                        help="LoRA on the U-Net only, with cached text-encoder outputs")
    parser.add_argument("--optimizer", default="AdamW", help="--optimizer_type for the trainer")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the statistics")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak TFLOP/s to compute MFU against (default: table by GPU name and dtype)")
    parser.add_argument("--no-flops", dest="flops", action="store_false", help="skip counting FLOPs")
    parser.add_argument("--runs", type=int, default=1, help="repeat the run; one line each")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_CACHE, help="models, data and outputs")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run before giving up")
    parser.add_argument("--trainer-args", default="", help="extra trainer flags, one string (shlex-split)")
    args = parser.parse_args(argv)
    if args.steps <= args.warmup:
        parser.error("--steps must be larger than --warmup")
    return args


def resolve_device(choice: str) -> str:
    if choice != "auto":
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_resolution(args: argparse.Namespace, device: str) -> int:
    if args.resolution:
        return args.resolution
    if args.size == "tiny":
        return 64
    if device == "cpu":
        return 128
    return 1024 if args.arch == "sdxl" else 512


def trainer_flags(args: argparse.Namespace, model: list[str], data: Path, out: Path, resolution: int,
                  precision: str) -> list[str]:
    """The run's flags: sd-scripts' spelling, so the same list drives both trainers in vs_sd_scripts."""
    import shlex

    if args.method == "finetune":  # captions come from a metadata file, images from their folder
        images, metadata = write_metadata(data)
        data_flags = ["--train_data_dir", str(images), "--in_json", str(metadata)]
    else:
        data_flags = ["--train_data_dir", str(data)]
    flags = [
        *model, *data_flags, "--output_dir", str(out), "--output_name", "bench",
        "--resolution", f"{resolution},{resolution}", "--train_batch_size", str(args.batch_size),
        "--max_train_steps", str(args.steps), "--learning_rate", "1e-4", "--optimizer_type", args.optimizer,
        "--mixed_precision", precision, "--save_precision", "float", "--sdpa", "--seed", "42",
        "--max_data_loader_n_workers", "0", "--save_model_as", "safetensors", "--caption_extension", ".txt",
    ]
    if args.method == "lora":
        flags += ["--network_module", "networks.lora", "--network_dim", str(args.rank),
                  "--network_alpha", str(args.rank)]
    if args.cache_latents:
        flags.append("--cache_latents")
    if args.gradient_checkpointing:
        flags.append("--gradient_checkpointing")
    if args.unet_only:
        flags += ["--network_train_unet_only", "--cache_text_encoder_outputs"]
    return flags + shlex.split(args.trainer_args)


def summarise(args: argparse.Namespace, config: dict[str, Any], durations: list[float], bench: dict[str, Any],
              device: str, precision: str) -> dict[str, Any]:
    timed = durations[args.warmup:]
    median_s, p90_s = median(timed), percentile(timed, 0.9)
    result: dict[str, Any] = {
        **config, "steps_timed": len(timed), "median_s": round(median_s, 4), "p90_s": round(p90_s, 4),
        "samples_per_s": round(args.batch_size / median_s, 3),
        "peak_rss_gib": gib(bench.get("peak_rss")), "peak_rss_train_gib": gib(bench.get("peak_rss_train")),
    }
    peak = args.peak_tflops
    if device == "cuda":
        loading = bench.get("cuda_max_allocated_loading", 0)
        result.update(
            gpu=bench.get("device_name"),
            cuda_max_allocated_gib=gib(max(loading, bench.get("cuda_train_max_allocated", 0))),
            cuda_train_max_allocated_gib=gib(bench.get("cuda_train_max_allocated")),
            cuda_train_max_reserved_gib=gib(bench.get("cuda_train_max_reserved")),
        )
        dtype = compute_dtype(precision, bool(bench.get("tf32")))
        result["compute_dtype"] = dtype
        peak = peak or peak_tflops(str(bench.get("device_name", "")), dtype)
    flops = bench.get("flops")
    achieved, mfu = utilisation(flops, median_s, peak)
    result.update(flops_per_step=flops, achieved_tflops=achieved, peak_tflops=peak, mfu=mfu)
    result.update(step_side_times(bench, args.warmup, median_s))
    if result.get("gpu_median_s"):
        result["mfu_gpu_time"] = utilisation(flops, result["gpu_median_s"], peak)[1]
    return result


def step_side_times(bench: dict[str, Any], warmup: int, wall_median_s: float) -> dict[str, Any]:
    """Median CPU (and GPU) seconds per timed step from the child's step clock, and CPU cores used."""
    found: dict[str, Any] = {}
    for key, name in (("step_cpu_s", "cpu"), ("step_gpu_s", "gpu")):
        timed = (bench.get(key) or [])[warmup:]
        if timed:
            found[f"{name}_median_s"] = round(median(timed), 4)
            found[f"{name}_p90_s"] = round(percentile(timed, 0.9), 4)
    if "cpu_median_s" in found and wall_median_s:
        found["cpu_cores_used"] = round(found["cpu_median_s"] / wall_median_s, 2)
    return found


def quietest_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of the run with the least foreign load, and which runs ran under other load."""
    best = load.quietest([r["load"] for r in results])
    chosen = results[best]
    keys = ("median_s", "p90_s", "cpu_median_s", "gpu_median_s", "samples_per_s", "achieved_tflops", "mfu",
            "mfu_gpu_time", "cuda_train_max_allocated_gib", "peak_rss_gib")
    medians = [r["median_s"] for r in results]
    return {
        "summary": True, "runs": len(results), "quietest_run": chosen["run"],
        **{k: chosen[k] for k in keys if k in chosen},
        "median_s_all_runs": round(median(medians), 4), "max_over_min_median_s": round(max(medians) / min(medians), 3),
        "runs_with_other_load": [r["run"] for r in results if load.load_differs(r["load"], chosen["load"])],
        "foreign_cores_by_run": [r["load"]["foreign_cores"] for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = COMMANDS[(args.method, args.arch == "sdxl")]
    if importlib.util.find_spec(f"backend.{command}") is None:
        skip("train_step", f"--method {args.method} needs backend.{command}, which this checkout does not have yet")
        return 0
    device = resolve_device(args.device)
    precision = args.mixed_precision or ("bf16" if device == "cuda" else "no")
    resolution = default_resolution(args, device)
    work = args.work_dir.resolve()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    path, tokenizers = ensure_model(args.size, args.arch, work, log)
    data = make_dataset(work / f"data-{resolution}px-{args.images}", args.images, resolution)
    config = {
        "method": args.method, "command": command, "arch": args.arch, "size": args.size, "device": device,
        "resolution": resolution, "batch_size": args.batch_size, "rank": args.rank if args.method == "lora" else None,
        "gradient_checkpointing": args.gradient_checkpointing, "mixed_precision": precision,
        "cache_latents": args.cache_latents, "unet_only": args.unet_only, "optimizer": args.optimizer,
        "steps": args.steps, "warmup": args.warmup,
        "omp_wait_policy": omp_wait_policy(),
    }
    failures = 0
    results: list[dict[str, Any]] = []
    for index in range(args.runs):
        out = work / "out" / f"train_step-{index}"
        flags = trainer_flags(args, model_flags(path, tokenizers, args.arch), data, out, resolution, precision)
        try:
            run = run_trainer(command, flags, device=device, flops=args.flops and index == 0,
                              log_path=out / "trainer.log", timeout=args.timeout)
        except TimeoutError as error:
            log(str(error))
            failures += 1
            continue
        problem = run.failure()
        if problem or len(run.step_times) < args.steps:
            log(problem or f"only {len(run.step_times)} step lines for {args.steps} steps (log: {out / 'trainer.log'})")
            failures += 1
            continue
        if results and not run.bench.get("flops"):  # counted in the first run only: the same work
            run.bench["flops"] = results[0].get("flops_per_step")
        result = summarise(args, config, run.step_times, run.bench, device, precision)
        results.append(emit("train_step", run=index, **result, wall_s=round(run.wall_s, 1), load=run.load,
                            **machine()))
    if len(results) > 1:
        emit("train_step", **config, **quietest_summary(results), **machine())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
