"""Telling contention from a slower trainer: machine load around a run, CPU time of a process tree
at each output line, the quietest pair or run."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.lib import load  # noqa: E402
from benchmarks.lib.process_watch import interpolate, watch  # noqa: E402
from benchmarks.train_step import quietest_summary  # noqa: E402
from benchmarks.vs_sd_scripts import pair_line, pairs_summary, spread  # noqa: E402

# Prints a mark, burns CPU for 0.4 s, marks, sleeps 0.4 s (a step that waits, as under contention), marks.
BUSY_THEN_IDLE = """
import time
def mark(n): print(f"mark {n}", flush=True)
mark(0)
end = time.process_time() + 0.4
while time.process_time() < end:
    pass
mark(1)
time.sleep(0.4)
mark(2)
"""


def test_waiting_costs_wall_time_but_not_cpu_time(tmp_path: Path) -> None:
    run = watch([sys.executable, "-c", BUSY_THEN_IDLE], cwd=tmp_path, env={}, log_path=tmp_path / "log", timeout=30)
    assert run.returncode == 0
    marks = [(int(text.split()[1]), when) for when, text in run.stdout if text.startswith("mark")]
    assert [n for n, _ in marks] == [0, 1, 2]
    wall = spread(marks)
    cpu = spread([(n, run.cpu_at(when)) for n, when in marks])
    assert wall[0] > 0.35 and wall[1] > 0.35
    assert 0.25 < cpu[0] < 0.6, cpu  # the busy step: CPU time close to its wall time
    assert cpu[1] < 0.1, cpu  # the waiting step: wall time without CPU time
    assert run.load["own_cores"] > 0 and set(run.load) >= {"foreign_cores", "steal_cores", "load_1m_start", "quiet"}


def test_interpolate_between_samples_and_clamps_at_the_ends() -> None:
    samples = [(10.0, 1.0), (12.0, 3.0), (13.0, 3.0)]
    assert interpolate(samples, 11.0) == 2.0
    assert interpolate(samples, 9.0) == 1.0 and interpolate(samples, 20.0) == 3.0
    assert interpolate([], 1.0) is None


def test_load_between_counts_foreign_cores() -> None:
    start = load.LoadMark(wall=0.0, busy=100.0, steal=5.0, own=10.0, load_1m=1.0)
    end = load.LoadMark(wall=10.0, busy=115.0, steal=6.0, own=20.0, load_1m=1.5)
    measured = load.between(start, end)
    assert measured["busy_cores"] == 1.5 and measured["own_cores"] == 1.0
    assert measured["foreign_cores"] == 0.5 and measured["steal_cores"] == 0.1 and measured["quiet"] is False


def test_pairs_marked_and_ratio_taken_from_the_quietest() -> None:
    def run(median_s: float, cpu_s: float, foreign: float) -> dict:
        return {"median_s": median_s, "cpu_median_s": cpu_s, "load": {"foreign_cores": foreign}}

    pairs = [pair_line(0, run(2.5, 1.0, 1.4), run(1.0, 1.0, 0.1)),  # ours ran under another job's load
             pair_line(1, run(0.9, 0.9, 0.05), run(1.0, 1.0, 0.1))]
    assert pairs[0]["load_differs"] and not pairs[1]["load_differs"]
    assert pairs[0]["step_time_ratio"] == 2.5 and pairs[0]["cpu_time_ratio"] == 1.0
    summary = pairs_summary(pairs)
    assert summary["quietest_pair"] == 1 and summary["step_time_ratio"] == 0.9 and summary["cpu_time_ratio"] == 0.9
    assert summary["pairs_with_load_difference"] == [0] and summary["wall_and_cpu_ratios_agree"] is True
    assert summary["step_time_ratio_by_pair"] == [2.5, 0.9]
    # a quieter pair whose two runs saw different load loses to an evenly loaded one
    uneven = pair_line(2, run(0.5, 1.0, 0.0), run(1.0, 1.0, 0.4))
    even = pair_line(3, run(1.2, 1.0, 0.6), run(1.0, 1.0, 0.6))
    assert pairs_summary([uneven, even])["quietest_pair"] == 3
    assert pairs_summary([uneven])["quietest_pair_load_differs"] is True


def test_train_step_summary_takes_the_quietest_run() -> None:
    runs = [{"run": 0, "median_s": 3.0, "cpu_median_s": 1.0, "load": {"foreign_cores": 1.2}},
            {"run": 1, "median_s": 1.1, "cpu_median_s": 1.0, "load": {"foreign_cores": 0.0}},
            {"run": 2, "median_s": 1.2, "cpu_median_s": 1.0, "load": {"foreign_cores": 0.1}}]
    summary = quietest_summary(runs)
    assert summary["quietest_run"] == 1 and summary["median_s"] == 1.1 and summary["runs_with_other_load"] == [0]
    assert summary["max_over_min_median_s"] == round(3.0 / 1.1, 3) and summary["median_s_all_runs"] == 1.2


def test_step_clock_marks_every_scheduler_step() -> None:
    import time
    from types import SimpleNamespace

    from benchmarks.lib.step_clock import StepClock

    class Scheduler:
        calls = 0

        def step(self) -> None:
            self.calls += 1

    run = SimpleNamespace(lr_scheduler=Scheduler())
    clock = StepClock(cuda=False)
    clock.attach(run)
    end = time.process_time() + 0.2
    while time.process_time() < end:  # a step that computes
        pass
    run.lr_scheduler.step()
    time.sleep(0.2)  # a step that waits
    run.lr_scheduler.step()
    report = clock.report()
    assert run.lr_scheduler.calls == 2 and set(report) == {"step_wall_s", "step_cpu_s"}
    assert report["step_wall_s"][0] >= 0.19 and report["step_wall_s"][1] >= 0.19
    assert report["step_cpu_s"][0] >= 0.15 and report["step_cpu_s"][1] < 0.05
