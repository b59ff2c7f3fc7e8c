"""The GPU checks' runner (benchmarks/device_checks.py) and what it reads, exercised on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.device_checks import run_part  # noqa: E402
from benchmarks.lib.device_plan import Part, plan  # noqa: E402
from benchmarks.lib.device_summary import read_junit, summary_rows, summary_table  # noqa: E402
from tests.benchmarks.conftest import REPO  # noqa: E402


def test_a_hanging_part_is_killed_with_its_children_at_its_limit(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    hang = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            f" open({str(pid_file)!r}, 'w').write(str(p.pid)); print('started', flush=True); time.sleep(60)")
    start = time.perf_counter()
    with open(tmp_path / "log", "a", encoding="utf-8") as log:
        record = run_part(Part("hang", "bench", [sys.executable, "-c", hang], 2), 2, log)
    assert record["status"] == "timeout" and time.perf_counter() - start < 20
    assert "started" in record["log_tail"]
    grandchild = int(pid_file.read_text())
    deadline = time.time() + 5
    while time.time() < deadline and not gone(grandchild):
        time.sleep(0.1)
    assert gone(grandchild)


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for its new parent counts: it runs no more)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_plan_covers_both_models_and_every_memory_saver(tmp_path: Path) -> None:
    gpu = {p.name: p for p in plan(False, tmp_path)}
    cpu = {p.name: p for p in plan(True, tmp_path)}
    assert list(gpu) == list(cpu)  # the dry run runs what the GPU session will
    target = gpu["sdxl_b4_gc"]
    assert target.config["resolution"] == 1024 and target.config["batch_size"] == 4 and target.config["flops"]
    assert gpu["sd15_b4"].config["resolution"] == 512 and "--device" in gpu["sd15_b4"].argv
    assert cpu["sdxl_b4_gc"].config["size"] == "tiny" and cpu["sdxl_b4_gc"].config["resolution"] == 64
    names = set(gpu)
    assert {"sd15_b4_gc", "sd15_b4_adamw8bit", "sd15_b4_fp8_base", "sd15_b4_no_cache_latents"} <= names
    # train_network has no text-encoder output cache; trainer flags travel as one --trainer-args
    assert "--trainer-args=--network_train_unet_only" in gpu["sd15_b4_unet_only"].argv
    everything = gpu["sdxl_b1_all_savers"].argv
    assert "--unet-only" in everything and "--trainer-args=--fp8_base --full_bf16" in everything
    assert sum(a.startswith("--trainer-args") for a in gpu["sd15_b4_all_savers"].argv) == 1
    assert list(gpu).index("build_sdxl") < list(gpu).index("sdxl_b4_gc")
    order = list(gpu)
    assert order.index("cuda_tests") < order.index("sdxl_b4_gc") < order.index("cuda_tests_slow")
    assert order.index("sd15_b4") < order.index("cuda_tests_slow") < order.index("sd15_b4_gc")
    assert gpu["cuda_tests"].env == {"KOHYA_TEST_DEVICE": "cuda"} and cpu["cuda_tests"].env == {}
    assert "cuda and slow" in gpu["cuda_tests_slow"].argv and gpu["cuda_tests_slow"].least_s == 180


def test_junit_and_summary_rows(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.cuda.test_a" name="test_ok" time="0.5"/>'
        '<testcase classname="tests.cuda.test_a" name="test_bad" time="1.0"><failure message="assert 1 == 2">'
        'trace</failure></testcase>'
        '<testcase classname="tests.cuda.test_b" name="test_gpu" time="0"><skipped message="no CUDA"/></testcase>'
        "</testsuite></testsuites>", encoding="utf-8")
    tests = read_junit(junit)
    assert (tests["passed"], tests["failed"], tests["skipped"]) == (1, 1, 1)
    assert tests["failures"][0]["test"] == "tests.cuda.test_a::test_bad" and "1 == 2" in tests["failures"][0]["message"]

    def bench(flags: list[str], median_s: float, flops: int | None) -> dict:
        line = {"benchmark": "train_step", "median_s": median_s, "achieved_tflops": 400.0 if flops else None,
                "mfu": 0.4 if flops else None, "flops_per_step": flops, "cuda_train_max_allocated_gib": 30.0}
        return {"status": "ok", "kind": "bench", "result": line,
                "config": {"arch": "sdxl", "resolution": 1024, "batch_size": 4, "flags": flags}}

    results = {"mode": "gpu", "budget_s": 470, "elapsed_s": 300, "commit": "abc", "parts": {
        "ceiling": {"status": "ok", "kind": "ceiling", "result": {"benchmark": "ceiling", "matmul_tflops": 800.0}},
        "plain": bench([], 1.0, 300 * 10**12), "gc": bench(["--gradient-checkpointing"], 1.5, 400 * 10**12),
        "cut": {"status": "timeout", "kind": "bench", "config": {"flags": []}},
    }}
    results["summary"] = rows = summary_rows(results)
    by_name = {r["name"]: r for r in rows}
    assert by_name["plain"]["mfu_vs_ceiling"] == 0.5
    # 300 TFLOP of model work in 1.5 s against a 1000 TFLOP/s peak (400 / 0.4)
    assert by_name["gc"]["mfu_model_flops"] == 0.2 and "mfu_model_flops" not in by_name["plain"]
    table = summary_table(results)
    assert "gc" in table and "timeout" in table and table.splitlines()[0].startswith("== device checks (gpu)")


def test_cpu_entry_runs_parts_and_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(["bash", "setup/device_checks.sh", "--cpu", "--only", "env,nvidia_smi,ceiling",
                             "--work-dir", str(tmp_path / "work")], cwd=REPO, capture_output=True, text=True,
                            timeout=180, env={**os.environ, "OUT": str(out), "PYTHON": sys.executable,
                                              "DEVICE_SITE": str(tmp_path / "site")})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["mode"] == "cpu" and list(results["parts"]) == ["env", "nvidia_smi", "ceiling"]
    env = results["parts"]["env"]["result"]
    assert env["benchmark"] == "env" and env["packages"]["torch"]["version"] and env["gpu"] == {"available": False}
    assert env["float8"]["relative_error"] < 0.1
    assert results["parts"]["nvidia_smi"]["status"] == "skipped"
    assert results["parts"]["ceiling"]["result"]["matmul_tflops"] > 0
    assert "== device checks (cpu)" in result.stdout and (out / "checks.log").is_file()


def test_parts_that_do_not_fit_the_budget_are_skipped_with_the_reason(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "benchmarks/device_checks.py", "--cpu", "--budget", "20", "--only",
                             "env,ceiling", "--out", str(tmp_path), "--work-dir", str(tmp_path / "work")],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    parts = json.loads((tmp_path / "results.json").read_text())["parts"]
    assert [p["status"] for p in parts.values()] == ["skipped", "skipped"]
    assert "needs 45 s (limit 90 s)" in parts["env"]["reason"] and "of the budget left" in parts["ceiling"]["reason"]
