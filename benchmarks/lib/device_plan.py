"""What benchmarks/device_checks.py runs, in order of importance, each with its own time limit.

GPU mode: the real architectures with random weights (SD 1.5 at 512 px and SDXL at 1024 px, batch
4, bf16) for step time and MFU, then one memory saver at a time for peak GPU memory; the SDXL
LoRA with gradient checkpointing is the performance issue's MFU target. CPU mode (`--cpu`): the
same parts with the tiny models at 64 px and a few steps, so a dry run here exercises every flag.
Limits are seconds of wall time on the device machine (CPU mode: on a 2-core machine); a part
whose limit does not fit the time left runs with what is left if that is at least half its
limit (or its `min_s`), else it is skipped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Part:
    name: str
    kind: str  # env, smi, tests, ceiling, build, bench
    argv: list[str]
    limit_s: float
    config: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # added to the part's environment
    min_s: float | None = None  # run only with at least this much time left (default: half the limit)

    @property
    def least_s(self) -> float:
        return self.min_s if self.min_s is not None else self.limit_s / 2


@dataclass(frozen=True)
class Bench:
    name: str
    arch: str
    batch: int
    savers: tuple[str, ...] = ()  # keys of SAVERS
    flops: bool = False  # the MFU runs count FLOPs; the memory runs need not
    gpu_limit_s: float = 75


# Memory savers on top of a LoRA run with cached latents: (train_step.py flags, trainer flags).
SAVERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "gc": (("--gradient-checkpointing",), ()),
    "adamw8bit": (("--optimizer", "AdamW8bit"), ()),
    "fp8_base": ((), ("--fp8_base",)),
    # U-Net only; on SDXL the text encoders' outputs are cached too (train_network has no such cache)
    "unet_only": ((), ("--network_train_unet_only",)),
    "full_bf16": (("--mixed-precision", "bf16"), ("--full_bf16",)),
    "no_cache_latents": (("--no-cache-latents",), ()),
}
ALL = ("gc", "adamw8bit", "fp8_base", "unet_only", "full_bf16")
SLOW_TESTS_AFTER = "sdxl_b1_all_savers"  # the slow CUDA tests run after this benchmark

BENCHES = [
    Bench("sdxl_b4_gc", "sdxl", 4, ("gc",), flops=True, gpu_limit_s=150),  # the MFU target
    Bench("sdxl_b4", "sdxl", 4, flops=True, gpu_limit_s=120),
    Bench("sd15_b4", "sd15", 4, flops=True, gpu_limit_s=90),
    Bench("sdxl_b1_all_savers", "sdxl", 1, ALL, gpu_limit_s=100),  # what a 24 GB card runs
    *[Bench(f"sd15_b4_{name}", "sd15", 4, (name,)) for name in SAVERS],
    Bench("sd15_b4_all_savers", "sd15", 4, ALL),
    Bench("sdxl_b1_gc", "sdxl", 1, ("gc",), gpu_limit_s=100),
]


def saver_flags(savers: tuple[str, ...], arch: str) -> list[str]:
    """train_step.py flags for these savers; trainer flags joined into one --trainer-args."""
    flags: list[str] = []
    trainer: list[str] = []
    for name in savers:
        own, extra = SAVERS[name]
        if name == "unet_only" and arch == "sdxl":
            own, extra = ("--unet-only",), ()  # adds --network_train_unet_only --cache_text_encoder_outputs
        flags += [f for f in own if f not in flags]
        trainer += extra
    return flags + ([f"--trainer-args={' '.join(trainer)}"] if trainer else [])


def bench_argv(bench: Bench, cpu: bool, work: Path) -> tuple[list[str], dict[str, Any]]:
    size, resolution = ("tiny", 64) if cpu else ("full", 1024 if bench.arch == "sdxl" else 512)
    batch = min(bench.batch, 2) if cpu else bench.batch
    steps, warmup = (4, 1) if cpu else ((12, 4) if bench.flops else (8, 3))
    flags = saver_flags(bench.savers, bench.arch)
    config = {"arch": bench.arch, "size": size, "resolution": resolution, "batch_size": batch, "steps": steps,
              "warmup": warmup, "savers": list(bench.savers), "flags": flags, "flops": bench.flops}
    argv = [sys.executable, "benchmarks/train_step.py", "--arch", bench.arch, "--size", size, "--resolution",
            str(resolution), "--batch-size", str(batch), "--steps", str(steps), "--warmup", str(warmup),
            "--device", "cpu" if cpu else "cuda", "--work-dir", str(work), *flags]
    if not bench.flops:
        argv.append("--no-flops")
    return argv, config


def test_part(name: str, marker: str, limit_s: float, cpu: bool, work: Path, min_s: float | None = None) -> Part:
    """The CUDA layer (tests/cuda) under a marker expression. On the GPU, KOHYA_TEST_DEVICE=cuda makes
    a GPU that torch cannot see an error rather than a run of skips; with --cpu every test skips."""
    junit = work / f"{name}.xml"
    argv = [sys.executable, "-m", "pytest", "-m", marker, "tests/cuda", "-q", "-p", "no:cacheprovider", "-rfEs",
            f"--junitxml={junit}"]
    return Part(name, "tests", argv, limit_s, {"junit": str(junit), "marker": marker},
                {} if cpu else {"KOHYA_TEST_DEVICE": "cuda"}, min_s)


def plan(cpu: bool, work: Path) -> list[Part]:
    """Fast tests and the MFU benchmarks first, then the slow tests (inductor compile, LyCORIS rows,
    8-bit optimizer runs: about 3 minutes of the layer's 3-4 on an H200), then the memory sweep."""
    py = sys.executable
    size = "tiny" if cpu else "full"
    parts = [
        Part("env", "env", [py, "-m", "benchmarks.lib.device_report"], 90),
        Part("nvidia_smi", "smi", ["nvidia-smi"], 20),
        test_part("cuda_tests", "cuda and not slow", 240 if cpu else 150, cpu, work),
        Part("ceiling", "ceiling", [py, "-m", "benchmarks.lib.ceiling"], 60),
    ]
    built: set[str] = set()
    for bench in BENCHES:
        if bench.arch not in built:  # the model is built once, before its first run, with its own limit
            build_limit = 120 if cpu else (150 if bench.arch == "sdxl" else 90)
            parts.append(Part(f"build_{bench.arch}", "build", [py, "-m", "benchmarks.lib.models", size, bench.arch,
                                                                  "--work-dir", str(work)], build_limit))
            built.add(bench.arch)
        argv, config = bench_argv(bench, cpu, work)
        limit = 120 if cpu else bench.gpu_limit_s
        parts.append(Part(bench.name, "bench", [*argv, "--timeout", str(limit)], limit, config))
        if bench.name == SLOW_TESTS_AFTER:
            # results come at the end of a pytest run: cut short, it would return none
            parts.append(test_part("cuda_tests_slow", "cuda and slow", 240, cpu, work, min_s=180))
    parts += [video_part(family, method, limit, cpu) for family, method, limit in VIDEO_BENCHES]
    return parts


# The video families against finetrainers' memory figures (benchmarks/video_step.py): last, as a first call
# rarely reaches them; a second call runs them with `--only video_ltx_video_lora,...` (docs/gpu-checks.md).
VIDEO_BENCHES = (("ltx_video", "lora", 75), ("wan", "lora", 75), ("cogvideox", "lora", 90), ("ltx_video", "full", 90),
                 ("hunyuan_video", "lora", 150), ("cogvideox", "full", 120))


def video_part(family: str, method: str, limit_s: float, cpu: bool) -> Part:
    """One video family's transformer training at finetrainers' 49x512x768, rank 128, with gradient
    checkpointing (CPU: the tiny model at 9x64x64, rank 4, 2 steps)."""
    shape = ["--size", "tiny", "--frames", "9", "--height", "64", "--width", "64", "--rank", "4", "--steps", "2",
             "--warmup", "1"] if cpu else ["--size", "full", "--steps", "5", "--warmup", "2"]
    argv = [sys.executable, "benchmarks/video_step.py", "--family", family, "--method", method,
            "--gradient-checkpointing", *shape]
    return Part(f"video_{family}_{method}", "bench", argv, 120 if cpu else limit_s,
                {"family": family, "method": method})
