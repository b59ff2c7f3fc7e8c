"""Seconds from starting the GUI to its page being served, and the GUI process's memory then.

    python benchmarks/gui_start.py [--runs N] [--timeout S]

Starts `kohya_gui.py --headless --server_port <free port>` as a user would (from the repo's
Python), polls `http://127.0.0.1:<port>/` until it answers HTTP 200, and reads the GUI process's
RSS (its children included, if any) at that moment. One JSON line per run:
{"benchmark": "gui_start", "seconds_to_200": ..., "rss_mib": ..., ...}. Targets: <= 3 s, <= 300 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lib.output import emit, machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS, TARGET_RSS_MB = 3.0, 300.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def tree_rss(pid: int) -> int:
    """RSS of a process and its children, in bytes."""
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total


def measure(timeout: float) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "kohya_gui.py", "--headless", "--server_port", str(port)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not answers_200(url):
            if process.poll() is not None:
                raise RuntimeError(f"the GUI exited with {process.returncode}: {process.stderr.read()[-2000:]}")
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"no HTTP 200 from {url} within {timeout:.0f} s")
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        rss = tree_rss(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    rss_mib = rss / 2**20
    return {"seconds_to_200": round(seconds, 3), "rss_mib": round(rss_mib, 1),
            "rss_mb": round(rss / 1e6, 1), "target_seconds": TARGET_SECONDS, "target_rss_mb": TARGET_RSS_MB,
            "meets_targets": seconds <= TARGET_SECONDS and rss / 1e6 <= TARGET_RSS_MB}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    for index in range(args.runs):
        try:
            emit("gui_start", run=index, **measure(args.timeout), **machine())
        except (RuntimeError, TimeoutError) as error:
            print(f"gui_start: {error}", file=sys.stderr)
            emit("gui_start", run=index, error=str(error).splitlines()[0][:300], **machine())
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
