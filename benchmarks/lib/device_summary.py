"""Reading the GPU checks' results: the CUDA tests' JUnit file, and one row per benchmark.

A benchmark row carries wall, GPU and CPU seconds per step, samples/s, achieved TFLOP/s, MFU
against the data-sheet peak (`mfu`), against the GPU time (`mfu_gpu_time`), against the matrix
product the card delivered in the `ceiling` part (`mfu_vs_ceiling`), and, for a run with gradient
checkpointing, the model-FLOPs MFU (`mfu_model_flops`: FLOPs of the same run without
checkpointing, so recomputation does not count as useful work), plus peak GPU memory.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any


def read_junit(path: Path) -> dict[str, Any]:
    """Counts and the failing/skipped tests of a pytest `--junitxml` file."""
    if not path.is_file():
        return {"error": f"no JUnit file at {path}"}
    root = ElementTree.parse(path).getroot()
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures, skipped = [], []
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        if outcome is None:
            counts["passed"] += 1
        elif outcome.tag == "skipped":
            counts["skipped"] += 1
            skipped.append({"test": name, "reason": (outcome.get("message") or "")[:200]})
        else:
            counts["failed" if outcome.tag == "failure" else "errors"] += 1
            text = outcome.get("message") or outcome.text or ""
            failures.append({"test": name, "seconds": float(case.get("time") or 0), "message": text[:800]})
    return {**counts, "failures": failures, "skipped_tests": skipped[:20]}


def _lines(record: dict[str, Any]) -> list[dict[str, Any]]:
    result = record.get("result")
    return result if isinstance(result, list) else ([result] if result else [])


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per benchmark part that produced a result line."""
    parts = results.get("parts", {})
    ceiling = next(iter(_lines(parts.get("ceiling", {}))), {}).get("matmul_tflops")
    rows = []
    for name, record in parts.items():
        if record.get("kind") != "bench":
            continue
        line = next((r for r in _lines(record) if r.get("benchmark") == "train_step" and not r.get("summary")), None)
        row: dict[str, Any] = {"name": name, "status": record["status"], **record.get("config", {})}
        video = next((r for r in _lines(record) if r.get("benchmark") == "video_step"), None)
        if video is not None:  # benchmarks/video_step.py: step time and peak memory beside finetrainers' figure
            memory = "peak_rss_gib" if video.get("device") == "cpu" else "cuda_train_max_allocated_gib"
            row.update(median_s=video.get("median_s"), **{memory: video.get("peak_gib")},
                       finetrainers_gib=video.get("finetrainers_gib"))
        elif line and not line.get("skipped"):
            for key in ("median_s", "gpu_median_s", "cpu_median_s", "samples_per_s", "achieved_tflops", "mfu",
                        "mfu_gpu_time", "flops_per_step", "cuda_train_max_allocated_gib", "cuda_max_allocated_gib",
                        "cuda_train_max_reserved_gib", "peak_rss_gib", "load"):
                row[key] = line.get(key)
            if ceiling and line.get("achieved_tflops"):
                row["mfu_vs_ceiling"] = round(line["achieved_tflops"] / ceiling, 4)
        rows.append(row)
    _add_model_flops_mfu(rows)
    return rows


def _add_model_flops_mfu(rows: list[dict[str, Any]]) -> None:
    """For a checkpointed run, MFU from the FLOPs of the same config without checkpointing."""
    def key(row: dict[str, Any], drop: str) -> tuple:
        return (row.get("arch"), row.get("resolution"), row.get("batch_size"),
                tuple(f for f in row.get("flags", []) if f != drop))

    plain = {key(r, ""): r for r in rows if "--gradient-checkpointing" not in r.get("flags", []) and r.get("flops_per_step")}
    for row in rows:
        if "--gradient-checkpointing" not in row.get("flags", []) or not row.get("median_s"):
            continue
        sibling = plain.get(key(row, "--gradient-checkpointing"))
        if sibling and row.get("mfu") and row.get("achieved_tflops"):
            peak = row["achieved_tflops"] / row["mfu"]
            row["mfu_model_flops"] = round(sibling["flops_per_step"] / row["median_s"] / 1e12 / peak, 4)


def env_brief(env: dict[str, Any]) -> str:
    """Versions, GPU and the carried wheels' state from the `env` part's line, in a few lines."""
    packages = env.get("packages", {})

    def version(name: str) -> str:
        entry = packages.get(name, {})
        return entry.get("version") or entry.get("error", "?")

    names = ("torch", "diffusers", "transformers", "accelerate", "bitsandbytes", "safetensors", "numpy")
    gpu = env.get("gpu", {})
    gpu_text = (f"{gpu.get('name')} cc {gpu.get('capability')}, {gpu.get('memory_gib')} GiB, CUDA {gpu.get('cuda')}"
                if gpu.get("available") else f"none ({gpu.get('error', 'not available')})")
    carried = env.get("carried", {})
    problems = carried.get("requirement_problems", carried.get("error", "?"))
    return "\n".join([
        f"  python {env.get('python')}; " + ", ".join(f"{n} {version(n)}" for n in names),
        f"  GPU: {gpu_text}",
        f"  carried wheels: {len(carried.get('installed', []))} installed, requirement problems: {problems or 'none'}",
        f"  float8: {env.get('float8')}; AdamW8bit: {env.get('adamw8bit')}",
    ])


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def summary_table(results: dict[str, Any]) -> str:
    """Plain-text summary: parts with status and seconds, test counts, one line per benchmark."""
    out = [f"== device checks ({results.get('mode')}), commit {results.get('commit') or '?'}"
           f"{' (dirty)' if results.get('dirty') else ''}, {results.get('elapsed_s', 0):.0f} s of {results['budget_s']:.0f}"]
    env = next(iter(_lines(results.get("parts", {}).get("env", {}))), None)
    if env:
        out.append(env_brief(env))
    for name, record in results.get("parts", {}).items():
        extra = record.get("reason", "")
        tests = record.get("tests")
        if tests and "error" not in tests:
            extra = (f"{tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, "
                     f"{tests['skipped']} skipped")
        if record.get("kind") == "ceiling":
            line = next(iter(_lines(record)), {})
            extra = f"{line.get('matmul_tflops')} TFLOP/s {line.get('matmul_dtype')}, {line.get('copy_gb_per_s')} GB/s copy"
        out.append(f"  {name:<28} {record['status']:<8} {record.get('seconds', 0):>6.1f} s  {extra}")
    header = ("bench", "wall s", "gpu s", "cpu s", "samp/s", "TFLOP/s", "MFU", "MFU gpu", "MFU ceil", "MFU model",
              "max GiB")
    out.append("  " + " ".join(f"{h:>9}" if i else f"{h:<27}" for i, h in enumerate(header)))
    for row in results.get("summary", []):
        cells = (row["name"], row.get("median_s"), row.get("gpu_median_s"), row.get("cpu_median_s"),
                 row.get("samples_per_s"), row.get("achieved_tflops"), row.get("mfu"), row.get("mfu_gpu_time"),
                 row.get("mfu_vs_ceiling"), row.get("mfu_model_flops"),
                 row.get("cuda_train_max_allocated_gib") or row.get("peak_rss_gib"))
        if row["status"] != "ok" and row.get("median_s") is None:
            cells = (row["name"], row["status"], *["-"] * 9)
        out.append("  " + " ".join(f"{_fmt(c):>9}" if i else f"{c:<27}" for i, c in enumerate(cells)))
    return "\n".join(out)
