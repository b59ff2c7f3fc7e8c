"""Our trainer against kohya-ss/sd-scripts on the same config: step time and peak memory, as ratios.

    python benchmarks/vs_sd_scripts.py --sd-scripts DIR [--sd-python PY] [--resolution PX] [--steps N]
        [--warmup N] [--pairs N] [--mixed-precision no|fp16|bf16] [--rank R] [--batch-size N]
        [--gradient-checkpointing] [--device auto|cpu|cuda] [--work-dir DIR]

DIR is a checkout of sd-scripts that you provide (it is never vendored here); PY the Python of its
environment (default: DIR/venv/bin/python, else this Python). Both trainers get the same flags
(`train_step.trainer_flags`) on the full-size SD 1.5 architecture with random weights, as one
single file plus a `--tokenizer_cache_dir` holding a locally generated CLIP tokenizer (sd-scripts
reads `<dir>/openai_clip-vit-large-patch14` instead of downloading), and the same generated images.
Runs alternate (ours, theirs, ours, theirs ...) so that load on a shared machine hits both alike.

Step times: the arrival time of each step's report, read the same way for both: our progress
lines (`@@progress` step events on stdout), sd-scripts' tqdm bar (`steps: ... | n/N` updates on
stderr, stamped as they arrive; when tqdm skips an update the time is spread evenly over the steps
it covers). The first `--warmup` steps are left out; the median of the rest is a run's step time.
CPU time per step: the trainer's process tree, sampled every 50 ms and read at the same step marks
(`cpu_median_s`). Peak memory: each process's RSS high-water mark (`os.wait4`), and GPU memory
polled via nvidia-smi where there is one.

A shared machine: around every run the system's busy cores not spent by the trainer are measured
(`load.foreign_cores`, benchmarks/lib/load.py). Each pair gives a wall-time and a CPU-time ratio;
pairs whose two runs saw different foreign load are marked (`load_differs`), and the summary's
`step_time_ratio` is the quietest pair's (least foreign load over both runs, among the pairs whose
runs saw the same load when there are any), with the ratio of all pairs' medians beside it. When wall and CPU ratios disagree, contention is the likely cause.
One JSON line per run, one per pair, then one summary line with `step_time_ratio`,
`cpu_time_ratio` and `peak_memory_ratio` (ours / theirs; targets <= 0.8 and <= 1.0).
Without --sd-scripts, one line says the comparison was skipped and why.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.training.progress import parse_progress_line  # noqa: E402
from benchmarks.lib import load  # noqa: E402
from benchmarks.lib.datasets import make_dataset  # noqa: E402
from benchmarks.lib.memory import gib  # noqa: E402
from benchmarks.lib.models import DEFAULT_CACHE, ensure_model, model_flags  # noqa: E402
from benchmarks.lib.output import emit, machine, median, percentile, skip  # noqa: E402
from benchmarks.lib.process_watch import Watched, watch  # noqa: E402
from benchmarks.lib.trainer_run import omp_wait_policy, trainer_env  # noqa: E402
from benchmarks.train_step import trainer_flags  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "benchmarks" / "lib" / "sd_scripts_launch.py"
TQDM_STEPS = re.compile(r"steps:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")
TARGET_STEP_RATIO, TARGET_MEMORY_RATIO = 0.8, 1.0
RATIO_AGREEMENT = 0.15  # wall and CPU ratios further apart than this: suspect contention, not the trainers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sd-scripts", type=Path, default=None, help="an sd-scripts checkout (not included)")
    parser.add_argument("--sd-python", type=Path, default=None, help="the Python of sd-scripts' environment")
    parser.add_argument("--resolution", type=int, default=None, help="default: 64 on CPU, 512 on CUDA")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=2, help="alternating (ours, theirs) pairs of runs")
    parser.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=None,
                        help="default: bf16 on CUDA, no on CPU")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    args = parser.parse_args(argv)
    if args.steps <= args.warmup:
        parser.error("--steps must be larger than --warmup")
    return args


def spread(marks: list[tuple[int, float]]) -> list[float]:
    """Per-step amounts from (steps done, time or CPU seconds) marks; a gap of k steps gives k equal shares."""
    durations: list[float] = []
    for (n0, t0), (n1, t1) in zip(marks, marks[1:], strict=False):
        if n1 > n0:
            durations += [(t1 - t0) / (n1 - n0)] * (n1 - n0)
    return durations


def our_step_marks(run: Watched) -> list[tuple[int, float]]:
    marks = []
    for arrived, line in run.stdout:
        event = parse_progress_line(line)
        if event and event["event"] in ("start", "step"):
            marks.append((int(event.get("step", event.get("initial_step", 0))), arrived))
    return marks


def their_step_marks(run: Watched) -> list[tuple[int, float]]:
    marks: dict[int, float] = {}
    for arrived, line in run.stderr:
        for match in TQDM_STEPS.finditer(line):
            marks.setdefault(int(match.group(1)), arrived)  # first time each count was shown
    return sorted(marks.items())


def run_one(which: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path,
            args: argparse.Namespace) -> dict[str, Any] | None:
    watched = watch(argv, cwd=cwd, env=env, log_path=log, timeout=args.timeout)
    marks = our_step_marks(watched) if which == "ours" else their_step_marks(watched)
    durations = spread(marks)[args.warmup:]
    if watched.returncode != 0 or len(durations) < args.steps - args.warmup:
        print(f"{which}: run failed (exit {watched.returncode}, {len(marks)} step marks); log {log}:\n"
              f"{watched.tail()}", file=sys.stderr)
        return None
    cpu = spread([(n, watched.cpu_at(t) or 0.0) for n, t in marks])[args.warmup:]
    return {"trainer": which, "median_s": round(median(durations), 4), "p90_s": round(percentile(durations, 0.9), 4),
            "cpu_median_s": round(median(cpu), 4), "cpu_cores_used": round(median(cpu) / median(durations), 2),
            "peak_rss_gib": gib(watched.peak_rss), "gpu_peak_mib": watched.gpu_peak_mib,
            "wall_s": round(watched.wall_s, 1), "load": watched.load}


def ratio(ours: list[float], theirs: list[float]) -> float | None:
    return round(median(ours) / median(theirs), 3) if ours and theirs and median(theirs) else None


def pair_line(pair: int, ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """One pair's ratios and whether its two runs saw the same foreign load."""
    return {"kind": "pair", "pair": pair, "step_time_ratio": ratio([ours["median_s"]], [theirs["median_s"]]),
            "cpu_time_ratio": ratio([ours["cpu_median_s"]], [theirs["cpu_median_s"]]),
            "foreign_cores": [ours["load"]["foreign_cores"], theirs["load"]["foreign_cores"]],
            "load_differs": load.load_differs(ours["load"], theirs["load"])}


def pairs_summary(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratios of the quietest pair (least foreign load over both runs) among those whose two runs saw
    the same load (among all, flagged, when none did), and every pair's for comparison."""
    comparable = [p for p in pairs if not p["load_differs"]] or pairs  # both runs under the same load first
    chosen = load.quietest([{"foreign_cores": sum(p["foreign_cores"])} for p in comparable])
    best = pairs.index(comparable[chosen])
    wall, cpu = pairs[best]["step_time_ratio"], pairs[best]["cpu_time_ratio"]
    return {"quietest_pair": pairs[best]["pair"], "step_time_ratio": wall, "cpu_time_ratio": cpu,
            "quietest_pair_load_differs": pairs[best]["load_differs"],
            "wall_and_cpu_ratios_agree": bool(wall and cpu and abs(wall / cpu - 1) <= RATIO_AGREEMENT),
            "step_time_ratio_by_pair": [p["step_time_ratio"] for p in pairs],
            "cpu_time_ratio_by_pair": [p["cpu_time_ratio"] for p in pairs],
            "pairs_with_load_difference": [p["pair"] for p in pairs if p["load_differs"]]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sd_scripts is None:
        skip("vs_sd_scripts", "no sd-scripts checkout given: pass --sd-scripts DIR (and --sd-python PY for "
             "its environment); nothing is compared without one")
        return 0
    sd_scripts = args.sd_scripts.resolve()
    if not (sd_scripts / "train_network.py").is_file():
        skip("vs_sd_scripts", f"{sd_scripts} is not an sd-scripts checkout (no train_network.py)")
        return 2
    default_python = sd_scripts / "venv" / "bin" / "python"
    sd_python = args.sd_python or (default_python if default_python.is_file() else Path(sys.executable))
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    precision = args.mixed_precision or ("bf16" if device == "cuda" else "no")
    resolution = args.resolution or (512 if device == "cuda" else 64)
    work = args.work_dir.resolve()
    path, tokenizers = ensure_model("full", "sd15", work, lambda m: print(m, file=sys.stderr))
    data = make_dataset(work / f"data-{resolution}px-{args.images}", args.images, resolution)
    for stale in data.rglob("*.npz"):
        stale.unlink()
    flag_args = argparse.Namespace(
        method="lora", batch_size=args.batch_size, steps=args.steps, optimizer="AdamW", rank=args.rank,
        cache_latents=True, gradient_checkpointing=args.gradient_checkpointing, unet_only=False, trainer_args="",
    )
    env = trainer_env(device)
    config = {"arch": "sd15", "size": "full", "device": device, "resolution": resolution, "mixed_precision": precision,
              "batch_size": args.batch_size, "rank": args.rank, "gradient_checkpointing": args.gradient_checkpointing,
              "steps": args.steps, "warmup": args.warmup, "sd_scripts": str(sd_scripts), "sd_python": str(sd_python),
              "omp_wait_policy": omp_wait_policy()}
    results: dict[str, list[dict[str, Any]]] = {"ours": [], "sd-scripts": []}
    pairs: list[dict[str, Any]] = []
    for pair in range(args.pairs):
        for which in ("ours", "sd-scripts"):
            out = work / "out" / f"vs-{which}-{pair}"
            flags = trainer_flags(flag_args, model_flags(path, tokenizers, "sd15"), data, out, resolution, precision)
            if which == "ours":
                argv_ = [sys.executable, "-m", "backend.train_network", *flags]
                cwd = REPO
            else:
                argv_ = [str(sd_python), str(LAUNCHER), str(sd_scripts / "train_network.py"), *flags]
                cwd = sd_scripts
            result = run_one(which, argv_, env, cwd, out / "run.log", args)
            if result is None:
                return 1
            results[which].append(result)
            emit("vs_sd_scripts", pair=pair, **config, **result, **machine())
        pairs.append(emit("vs_sd_scripts", **pair_line(pair, results["ours"][-1], results["sd-scripts"][-1])))
    ours, theirs = results["ours"], results["sd-scripts"]
    quiet = pairs_summary(pairs)
    step_ratio = quiet["step_time_ratio"]
    memory_key = "gpu_peak_mib" if device == "cuda" and ours[0]["gpu_peak_mib"] else "peak_rss_gib"
    memory_ratio = ratio([r[memory_key] for r in ours], [r[memory_key] for r in theirs])
    emit("vs_sd_scripts", summary=True, **config, **quiet, peak_memory_ratio=memory_ratio,
         step_time_ratio_all_pairs=ratio([r["median_s"] for r in ours], [r["median_s"] for r in theirs]),
         cpu_time_ratio_all_pairs=ratio([r["cpu_median_s"] for r in ours], [r["cpu_median_s"] for r in theirs]),
         memory_measure=memory_key, ours_median_s=round(median([r["median_s"] for r in ours]), 4),
         theirs_median_s=round(median([r["median_s"] for r in theirs]), 4),
         meets_step_target=step_ratio is not None and step_ratio <= TARGET_STEP_RATIO,
         meets_memory_target=memory_ratio is not None and memory_ratio <= TARGET_MEMORY_RATIO, **machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
