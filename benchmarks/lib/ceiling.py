"""The two ceilings of the machine as found: a large matrix product's TFLOP/s and a copy's bandwidth.

    python -m benchmarks.lib.ceiling [--size N] [--repeats R]

MFU against a data-sheet peak says how far a step is from the vendor's number; against these
measured ceilings, how far it is from what this card delivers today (clocks, power, sharing).
Random inputs (zeros run faster on some GPUs), warm-up first, then the median of `--repeats`
timings, each with CUDA events on a GPU. One JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import torch


def timed(fn: Callable[[], object], repeats: int, cuda: bool) -> float:
    """Median seconds of `fn` after two warm-up calls."""
    for _ in range(2):
        fn()
    seconds = []
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            seconds.append(start.elapsed_time(end) / 1000)
        else:
            begin = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - begin)
    return statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=None, help="matrix side (default 8192 on CUDA, 1024 on CPU)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    n = args.size or (8192 if cuda else 1024)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    matmul_s = timed(lambda: a @ b, args.repeats, cuda)
    source = torch.randn(256 * 1024 * 1024 if cuda else 16 * 1024 * 1024, device=device)  # 1 GiB / 64 MiB fp32
    target = torch.empty_like(source)
    copy_s = timed(lambda: target.copy_(source), args.repeats, cuda)
    moved = 2 * source.numel() * source.element_size()  # read + write
    print(json.dumps({
        "benchmark": "ceiling", "device": torch.cuda.get_device_name() if cuda else "cpu",
        "matmul_dtype": str(dtype).removeprefix("torch."), "matmul_n": n, "matmul_s": round(matmul_s, 6),
        "matmul_tflops": round(2 * n**3 / matmul_s / 1e12, 2), "copy_bytes": moved,
        "copy_gb_per_s": round(moved / copy_s / 1e9, 1), "torch": torch.__version__,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
