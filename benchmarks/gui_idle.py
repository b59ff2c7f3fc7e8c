"""What an open GUI page costs the browser while nothing runs, and how long edits take.

    python benchmarks/gui_idle.py [--seconds S] [--edits N]

Starts `kohya_gui.py --headless` on a free port, opens the LoRA tab in Debian's Chromium (Playwright), waits
until the page settles, then measures the CPU seconds Chromium's processes (those started for this run) and
the GUI process use over `--seconds` of idling, and the wall seconds of `--edits` field edits (fill + leave,
each one an autosave event). One JSON line: {"benchmark": "gui_idle", "browser_cpu_s": ..., ...}.

Why: every Gradio event is processed over the whole page (hundreds of fields). Progress panels that polled
every second kept the renderer at ~75% of a core on an idle page (docs/performance.md, GUI idle).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gui_start import answers_200, free_port  # noqa: E402
from benchmarks.lib.output import emit, machine, skip  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue  # a renderer that went away
        total += times.user + times.system
    return total


def browser_processes(since: float) -> list[psutil.Process]:
    """Chromium's processes started at or after `since` (not another test's browser)."""
    found = []
    for process in psutil.process_iter(["cmdline", "create_time"]):
        command = " ".join(process.info["cmdline"] or [])
        if "chromium" in command and (process.info["create_time"] or 0) >= since - 1:
            found.append(process)
    return found


def measure(seconds: float, edits: int, timeout: float) -> dict:
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen([sys.executable, "kohya_gui.py", "--headless", "--server_port", str(port)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while not answers_200(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the GUI did not answer on {url}")
            time.sleep(0.1)
        launched = time.time()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#model_type", timeout=timeout * 1000)
            time.sleep(5)  # first ticks and the restored form
            chromium, gui = browser_processes(launched), [psutil.Process(server.pid)]
            browser_before, gui_before = cpu_seconds(chromium), cpu_seconds(gui)
            time.sleep(seconds)
            browser_cpu, gui_cpu = cpu_seconds(chromium) - browser_before, cpu_seconds(gui) - gui_before
            box = page.locator("#opt_learning_rate").locator("textarea, input").first
            start = time.perf_counter()
            for index in range(edits):
                box.fill(f"0.00{index + 1}")
                box.blur()
            edit_seconds = time.perf_counter() - start
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"idle_seconds": seconds, "browser_cpu_s": round(browser_cpu, 2), "gui_cpu_s": round(gui_cpu, 2),
            "browser_cores_busy": round(browser_cpu / seconds, 3), "edits": edits,
            "edit_seconds_each": round(edit_seconds / max(edits, 1), 3)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        skip("gui_idle", f"needs Chromium at {CHROMIUM}")
        return 0
    try:
        emit("gui_idle", **measure(args.seconds, args.edits, args.timeout), **machine())
    except RuntimeError as error:
        emit("gui_idle", error=str(error)[:300], **machine())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
