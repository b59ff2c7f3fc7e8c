"""Run one training command exactly as `python -m backend.<command>` does, then report measurements.

    python -m benchmarks.lib.trainer_child [--flops] <command> <trainer flags...>

The trainer runs through `backend.training.command.run_command` (the code path of every training
command), so its progress lines on stdout are the real ones. Around it this process records what
only it can see, and prints one `@@bench {json}` line at the end:

- `peak_rss`: the process's RSS high-water mark over the whole run (loading included);
- `peak_rss_train`: the highest RSS sampled (every 50 ms) from the moment the run was built, i.e.
  over the training steps and the final save;
- on CUDA, `cuda_max_allocated` / `cuda_max_reserved` over the whole run and `cuda_train_*` from the
  moment the run was built;
- per step (benchmarks/lib/step_clock.py): `step_cpu_s`, the process's CPU seconds, `step_wall_s`,
  and on CUDA `step_gpu_s` from CUDA events;
- with `--flops`: the FLOPs of one more training step (forward + backward of the same batch code
  the loop runs), counted after training so that counting does not slow the timed steps.

The built run is caught by wrapping `run_setup.build_run` (which `run_command` looks up at call
time); a training command that builds its run some other way still trains and reports memory, with
`flops` null.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch

from backend.training import run_setup
from backend.training.command import run_command
from benchmarks.lib.memory import RssSampler, own_peak_rss
from benchmarks.lib.output import BENCH_PREFIX
from benchmarks.lib.step_clock import StepClock


def count_step_flops(run: Any) -> int:
    """FLOPs of forward + backward for one batch of `run`'s loader, through the loop's own code."""
    from torch.utils.flop_counter import FlopCounterMode

    from backend.training.step import batch_loss, sample_generators

    batch = next(iter(run.loader))
    generator = sample_generators(run, 1, batch["sample_indices"])
    with FlopCounterMode(display=False) as counter:
        loss = batch_loss(run, batch, generator)
        run.accelerator.backward(loss)
    run.optimizer.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def main(argv: list[str]) -> int:
    flops = argv[:1] == ["--flops"]
    if flops:
        argv = argv[1:]
    if not argv:
        print("usage: python -m benchmarks.lib.trainer_child [--flops] <command> <flags...>", file=sys.stderr)
        return 2
    command, trainer_argv = argv[0], argv[1:]
    cuda = torch.cuda.is_available()
    sampler = RssSampler().start()
    built: list[Any] = []
    clock = StepClock(cuda)
    original_build_run = run_setup.build_run

    def build_run_and_mark(*args: Any, **kwargs: Any) -> Any:
        run = original_build_run(*args, **kwargs)
        built.append(run)
        sampler.mark()  # training starts now: peaks from here on are the training peaks
        if cuda:
            report["cuda_built_allocated"] = torch.cuda.memory_allocated()
            report["cuda_max_allocated_loading"] = torch.cuda.max_memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        clock.attach(run)
        return run

    report: dict[str, Any] = {}
    run_setup.build_run = build_run_and_mark
    try:
        code = run_command(command, trainer_argv)
    finally:
        run_setup.build_run = original_build_run
    report.update(exit_code=code, peak_rss=own_peak_rss(), peak_rss_train=sampler.stop() if built else None)
    if cuda:
        report.update(
            device_name=torch.cuda.get_device_name(),
            cuda_train_max_allocated=torch.cuda.max_memory_allocated(),
            cuda_train_max_reserved=torch.cuda.max_memory_reserved(),
            tf32=torch.get_float32_matmul_precision() != "highest",
        )
    report.update(clock.report())
    report["flops"] = count_step_flops(built[0]) if flops and built and code == 0 else None
    print(BENCH_PREFIX + json.dumps(report), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
