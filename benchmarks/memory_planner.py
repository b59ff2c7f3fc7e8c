"""The memory planner against real runs: predicted peak memory next to the measured one.

    python benchmarks/memory_planner.py [--size tiny|full] [--methods lora,finetune] [--resolution 64]
        [--steps 3] [--device auto|cpu|cuda] [--work-dir DIR]

Each case runs the real trainer through benchmarks/train_step.py's flags and child process
(benchmarks/lib/trainer_run.py) and puts the planner's prediction (backend/memory/estimate.py, given the
same options) beside what the child measured: on the CPU its peak RSS (the kernel's high-water mark over
the whole run, loading and saving included), on CUDA torch.cuda.max_memory_allocated. One JSON line per
case: predicted, measured, ratio (predicted / measured) and the machine's load over the run.
The fine-tune case uses Adafactor with a fixed learning rate (sd-scripts' usual memory-saving choice); a
float32 AdamW fine-tune of the full-size U-Net needs ~14 GB of optimizer state and gradients alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lib.datasets import make_dataset  # noqa: E402
from benchmarks.lib.memory import gib  # noqa: E402
from benchmarks.lib.models import DEFAULT_CACHE, ensure_model, model_flags  # noqa: E402
from benchmarks.lib.output import emit, machine  # noqa: E402
from benchmarks.lib.trainer_run import run_trainer  # noqa: E402
from benchmarks.train_step import COMMANDS, parse_args, resolve_device, trainer_flags  # noqa: E402

CASES = {
    "lora": ["--method", "lora"],
    "finetune": ["--method", "finetune", "--optimizer", "Adafactor",
                 "--trainer-args=--optimizer_args relative_step=False scale_parameter=False warmup_init=False"],
}  # fmt: skip


def flags_to_options(flags: list[str]) -> dict[str, Any]:
    """The trainer's flags as the option mapping the planner reads (`--name value...` or a bare `--flag`)."""
    options: dict[str, Any] = {}
    name: str | None = None
    for flag in flags:
        if flag.startswith("--"):
            name = flag[2:]
            options[name] = True
        elif name is not None:
            options[name] = flag if options[name] is True else f"{options[name]} {flag}"
    return options


def measure_case(
    size: str, method: str, device: str, resolution: int, steps: int, work: Path, log=print
) -> dict[str, Any]:
    """Train one short case and return the predicted and measured figures (bytes)."""
    from backend.memory.estimate import estimate

    args = parse_args(
        [
            *CASES[method],
            "--size",
            size,
            "--steps",
            str(steps),
            "--warmup",
            "1",
            "--no-flops",
            "--resolution",
            str(resolution),
            "--images",
            "2",
            "--work-dir",
            str(work),
        ]
    )
    command = COMMANDS[(method, False)]
    path, tokenizers = ensure_model(size, "sd15", work, log)
    data = make_dataset(work / f"data-{resolution}px-2", 2, resolution)
    out = work / "out" / f"memory_planner-{size}-{method}"
    precision = "no" if device == "cpu" else "bf16"
    flags = trainer_flags(args, model_flags(path, tokenizers, "sd15"), data, out, resolution, precision)
    predicted = estimate(command, flags_to_options(flags), "cuda" if device == "cuda" else "cpu")
    run = run_trainer(command, flags, device=device, flops=False, log_path=out / "trainer.log", timeout=3600)
    problem = run.failure()
    if problem:
        raise RuntimeError(problem)
    if device == "cuda":
        measured = max(
            run.bench.get("cuda_max_allocated_loading", 0), run.bench.get("cuda_train_max_allocated", 0)
        )
        figure = predicted.gpu_peak
    else:
        measured, figure = int(run.bench["peak_rss"]), predicted.host_peak
    return {
        "size": size,
        "method": method,
        "command": command,
        "device": device,
        "resolution": resolution,
        "steps": steps,
        "predicted": figure,
        "measured": measured,
        "ratio": round(figure / measured, 3),
        "predicted_gib": gib(figure),
        "measured_gib": gib(measured),
        "load": run.load,
        "breakdown": {line.key: line.gpu if device == "cuda" else line.host for line in predicted.lines},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("tiny", "full"), default="full")
    parser.add_argument("--methods", default="lora,finetune")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    failures = 0
    for method in args.methods.split(","):
        try:
            result = measure_case(
                args.size,
                method,
                device,
                args.resolution,
                args.steps,
                args.work_dir.resolve(),
                lambda m: print(m, file=sys.stderr, flush=True),
            )
        except RuntimeError as error:
            print(error, file=sys.stderr)
            failures += 1
            continue
        emit("memory_planner", **result, **machine())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
