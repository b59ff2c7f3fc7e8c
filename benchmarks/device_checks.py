"""The GPU checks in one command: environment, the CUDA test layer, GPU benchmarks; results in $OUT.

    bash setup/device_checks.sh [--cpu] [--budget S] [--only A,B] [--skip A,B] [--list]   # the entry
    python benchmarks/device_checks.py --out DIR [same options]   # what it runs after installing .whl

Parts (benchmarks/lib/device_plan.py) run one after another, each in its own process group with
its own time limit, so a hang costs that limit and no more; a part that does not fit the time left
in `--budget` is skipped and says so. Two files are written under --out: `results.json`, rewritten
after every part (a run cut short still returns what it did), and `checks.log`, every part's full
output. Stdout gets one line per part and, last, a summary table. `--cpu` runs the same parts on
the CPU (CUDA tests skip themselves, tiny models at 64 px), a dry run for the GPU session.
docs/gpu-checks.md says how to run it on the lent machine and how to read the results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lib.device_plan import Part, plan  # noqa: E402
from benchmarks.lib.device_summary import read_junit, summary_rows, summary_table  # noqa: E402

RESERVE_S = 5.0  # kept back from the budget for writing the results and the summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="dry run on the CPU: tiny models, CUDA tests skip")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/device-checks-out")))
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/device-checks-work"),
                        help="models, datasets, trainer outputs (not returned)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for all parts (default: 460 on the GPU, 1800 with --cpu)")
    parser.add_argument("--only", default="", help="comma-separated part names to run (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated part names to leave out")
    parser.add_argument("--list", action="store_true", help="print the parts and their limits, run nothing")
    return parser.parse_args(argv)


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among a part's stdout lines (anything else is left to the log)."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def run_part(part: Part, limit: float, log: TextIO) -> dict[str, Any]:
    """Run one part in its own process group; kill the whole group at `limit` seconds. Its stderr goes
    to the log as it comes; its stdout after it ends (JSON result lines are parsed from it)."""
    log.write(f"\n===== {part.name} (limit {limit:.0f} s): {shlex.join(part.argv)}\n")
    log.flush()
    log_start = log.tell()
    junit = Path(part.config["junit"]) if "junit" in part.config else None
    if junit:
        junit.unlink(missing_ok=True)  # never read an earlier run's results
    start = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **part.env}
    try:
        process = subprocess.Popen(part.argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
                                   start_new_session=True)
    except OSError as error:
        return {"status": "failed", "seconds": 0.0, "reason": f"could not start: {error}"}
    try:
        stdout, _ = process.communicate(timeout=limit)
        status = "ok" if process.returncode == 0 else "failed"
        if junit and process.returncode == 5:  # pytest: nothing collected
            status = "no-tests"
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, _ = process.communicate()
        status = "timeout"
    log.write(stdout)
    log.flush()
    record: dict[str, Any] = {"status": status, "seconds": round(time.perf_counter() - start, 1),
                              "exit_code": process.returncode, "limit_s": round(limit)}
    lines = json_lines(stdout)
    if part.kind == "smi":
        record["output"] = stdout[-4000:]
    elif lines:
        record["result"] = lines if len(lines) > 1 else lines[0]
    if junit:
        record["tests"] = read_junit(junit)
    if status != "ok":
        with open(log.name, "rb") as reread:  # what the part wrote: its stderr, then its stdout
            reread.seek(log_start)
            record["log_tail"] = reread.read().decode("utf-8", errors="replace")[-2000:]
    return record


def write_results(out: Path, results: dict[str, Any]) -> None:
    temporary = out / "results.json.tmp"
    temporary.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    temporary.replace(out / "results.json")


def manifest_commit() -> dict[str, Any]:
    path = REPO / ".whl" / "manifest.json"
    if not path.is_file():
        return {"commit": None, "dirty": None}
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return {"commit": manifest.get("commit"), "dirty": manifest.get("dirty")}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budget = args.budget or (1800.0 if args.cpu else 460.0)
    work = args.work_dir.resolve()
    parts = plan(args.cpu, work)
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - {p.name for p in parts}
    if unknown:
        print(f"unknown part names: {', '.join(sorted(unknown))}; known: {', '.join(p.name for p in parts)}",
              file=sys.stderr)
        return 2
    if args.list:
        for part in parts:
            print(f"{part.name:<28} {part.kind:<8} limit {part.limit_s:>4.0f} s  {shlex.join(part.argv[1:])}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "schema": 1, "mode": "cpu" if args.cpu else "gpu", "budget_s": budget, **manifest_commit(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "parts": {},
    }
    with open(args.out / "checks.log", "a", encoding="utf-8") as log:
        for part in parts:
            if (only and part.name not in only) or part.name in skip:
                continue
            left = budget - (time.perf_counter() - started) - RESERVE_S
            if left < part.least_s:
                record: dict[str, Any] = {"status": "skipped", "reason": f"{left:.0f} s of the budget left, "
                                          f"needs {part.least_s:.0f} s (limit {part.limit_s:.0f} s)"}
            elif part.kind == "smi" and args.cpu:
                record = {"status": "skipped", "reason": "--cpu"}
            elif part.kind == "tests" and not (REPO / "tests" / "cuda").is_dir():
                record = {"status": "skipped", "reason": "tests/cuda is not in this checkout"}
            else:
                record = run_part(part, min(part.limit_s, left), log)
                if record["status"] == "timeout" and left < part.limit_s:
                    record["cut_by_budget"] = True  # not the code's failure: the budget ran out
            record["kind"] = part.kind
            if part.config:
                record["config"] = part.config
            results["parts"][part.name] = record
            print(f"{part.name:<28} {record['status']:<8} {record.get('seconds', 0):>6.1f} s"
                  f"{'  ' + record['reason'] if 'reason' in record else ''}", flush=True)
            if part.kind == "smi" and record.get("output"):
                print(record["output"].rstrip(), flush=True)
            results["elapsed_s"] = round(time.perf_counter() - started, 1)
            write_results(args.out, results)
        results["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        results["summary"] = summary_rows(results)
        write_results(args.out, results)
        table = summary_table(results)
        log.write("\n" + table + "\n")
    print(table, flush=True)
    failed = [n for n, r in results["parts"].items()
              if r["status"] == "failed" or (r["status"] == "timeout" and not r.get("cut_by_budget"))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
