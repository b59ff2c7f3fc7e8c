"""Data-parallel LoRA training with two processes on the CPU (gloo), launched as users launch it.

`accelerate launch --cpu` starts one process whatever `--num_processes` says (its simple launcher);
several CPU processes come from the multi-process launcher with ACCELERATE_USE_CPU=1, which makes
accelerate connect them with gloo instead of NCCL, on any machine.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from backend.training.distributed import tensors_checksum
from backend.training.loop import average_gradients
from backend.training.progress import parse_progress_line
from backend.training.schedulers import create_scheduler

from .helpers import REPO, TrainerResult, base_flags, make_images, run_trainer, trainer_env

STEPS = 4
LR = 1e-2
CHECKSUMS = re.compile(r"network checksums per process: (.+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(launcher_flags: list[str], trainer_args: list[str], timeout: int = 300) -> TrainerResult:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", *launcher_flags, "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
        "--main_process_port", str(free_port()), "-m", "backend.train_network", *trainer_args,
    ]
    env = {**trainer_env(), "ACCELERATE_USE_CPU": "1"}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    events = [e for e in map(parse_progress_line, result.stdout.splitlines()) if e is not None]
    return TrainerResult(result.returncode, events, result.stdout, result.stderr)


def launch_two(*trainer_args: str) -> TrainerResult:
    return launch(["--multi_gpu", "--num_processes", "2"], list(trainer_args))


def checksums(result: TrainerResult) -> list[list[str]]:
    """Per save: the network checksum every process computed (logged by the main process)."""
    return [m.group(1).split() for m in map(CHECKSUMS.search, result.stderr.splitlines()) if m]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Its own images: the latent cache files written next to them must not reach other tests' data.
    root = tmp_path_factory.mktemp("mp-data") / "train"
    make_images(root / "2_sks dog", 3)
    return root


@pytest.fixture(scope="module")
def flags(tiny, dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    prompts = tmp_path_factory.mktemp("mp-prompts") / "prompts.txt"
    prompts.write_text("sks dog --w 64 --h 64 --d 3 --s 2\n")

    def make(out: Path, *extra: str) -> list[str]:
        return base_flags(
            tiny.get("sd15").path, dataset, out, "--max_train_steps", str(STEPS), "--learning_rate", str(LR),
            "--network_dim", "4", "--lr_scheduler", "linear", "--lr_warmup_steps", "2", "--cache_latents_to_disk",
            "--save_every_n_steps", "2", "--save_state", "--sample_prompts", str(prompts),
            "--sample_every_n_steps", "2", *extra,
        )

    return make


@pytest.fixture(scope="module")
def two_process_run(flags, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainerResult]:
    out = tmp_path_factory.mktemp("mp-out")
    result = launch_two(*flags(out))
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


@pytest.fixture(scope="module")
def resumed_run(flags, two_process_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainerResult]:
    first_out, _ = two_process_run
    out = tmp_path_factory.mktemp("mp-resumed")
    result = launch_two(*flags(out, "--resume", str(first_out / "tiny-step00000002-state")))
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


def single_process_lrs() -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    scheduler = create_scheduler(optimizer, name="linear", total_steps=STEPS, learning_rate=LR, warmup_steps=2)
    lrs = []
    for _ in range(STEPS):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    return lrs


def test_one_process_reports_and_batches_are_split(two_process_run):
    _, result = two_process_run
    assert [e["event"] for e in result.events].count("start") == 1
    assert [e["step"] for e in result.of("step")] == [1, 2, 3, 4]
    assert len(result.of("end")) == 1 and result.of("end")[0]["reason"] == "completed"
    # 3 images x 2 repeats = 6 batches, 3 per process: an epoch is 3 steps (6 with one process).
    start = result.of("start")[0]
    assert start["num_batches_per_epoch"] == 6 and start["total"] == STEPS and start["epochs"] == 2
    assert [e["epoch"] for e in result.of("step")] == [1, 1, 1, 2]


def test_lr_schedule_counts_optimizer_steps(two_process_run):
    _, result = two_process_run
    lrs = [e["lr"][0] for e in result.of("step")]
    assert lrs == pytest.approx(single_process_lrs())
    assert lrs == pytest.approx([0.005, 0.01, 0.005, 0.0])


def test_ranks_hold_identical_weights_and_the_file_is_them(two_process_run):
    out, result = two_process_run
    per_save = checksums(result)
    assert len(per_save) == 2, "one check per model save (step 2 and the end)"
    assert all(len(save) == 2 and save[0] == save[1] for save in per_save)
    assert per_save[-1][0] == tensors_checksum(load_file(out / "tiny.safetensors"))
    assert per_save[0][0] == tensors_checksum(load_file(out / "tiny-step00000002.safetensors"))


def test_only_the_main_process_writes(two_process_run):
    out, result = two_process_run
    saved = [(Path(e["path"]).name, e["kind"]) for e in result.of("checkpoint")]
    assert saved == [("tiny-step00000002.safetensors", "model"), ("tiny-step00000002-state", "state"),
                     ("tiny.safetensors", "model")]
    assert sorted(p.name for p in out.iterdir()) == [
        "sample", "tiny-step00000002-state", "tiny-step00000002.safetensors", "tiny.safetensors"
    ]
    samples = result.of("sample")
    assert [e["step"] for e in samples] == [2, 4]
    assert sorted(p.name for p in (out / "sample").iterdir()) == sorted(Path(e["path"]).name for e in samples)
    state = out / "tiny-step00000002-state"
    assert {"random_states_0.pkl", "random_states_1.pkl", "custom_checkpoint_0.pkl"} <= {p.name for p in state.iterdir()}
    record = json.loads((state / "train_state.json").read_text())
    assert record["global_step"] == 2 and record["batches_done_in_epoch"] == 2  # batches of this process's shard


def test_the_main_process_caches_latents_and_the_other_reads_them(two_process_run):
    _, result = two_process_run
    assert result.stderr.count("latents: 3 encoded, 0 reused from cache files") == 1
    assert result.stderr.count("latents: 0 encoded, 3 reused from cache files") == 1
    assert {e["total"] for e in result.of("cache")} == {3}  # cache progress from one process only


def test_resume_with_two_processes_continues_where_it_stopped(two_process_run, resumed_run):
    first_out, first = two_process_run
    out, result = resumed_run
    assert result.of("start")[0]["initial_step"] == 2
    assert [e["step"] for e in result.of("step")] == [3, 4]
    assert [e["epoch"] for e in result.of("step")] == [1, 2]
    steps_before = {e["step"]: e for e in first.of("step")}
    for event in result.of("step"):  # the same batches, noise, optimizer and scheduler state
        assert event["loss"] == steps_before[event["step"]]["loss"]
        assert event["lr"] == steps_before[event["step"]]["lr"]
    resumed, uninterrupted = load_file(out / "tiny.safetensors"), load_file(first_out / "tiny.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in resumed)
    assert all(save[0] == save[1] for save in checksums(result))


def test_cpu_launcher_runs_one_process_and_preflight_says_so(flags, tmp_path):
    result = launch(["--cpu", "--num_processes", "2"], [*flags(tmp_path), "--preflight"])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)  # one report: one process
    assert report["dataset"]["processes"] == 1
    assert any("runs a single process" in warning for warning in report["warnings"])


def test_processes_that_are_not_connected_are_refused(tiny, dataset, tmp_path, monkeypatch):
    # What each process of `--multi_gpu` sees on a machine without GPUs and without ACCELERATE_USE_CPU.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    result = run_trainer("train_network", *base_flags(tiny.get("sd15").path, dataset, tmp_path, "--max_train_steps", "1"))
    assert result.returncode == 1
    assert "not connected" in result.of("error")[0]["message"]
    assert not list(tmp_path.iterdir())


def test_average_gradients_keeps_parameters_without_gradients_untouched(tmp_path):
    # One gloo process posing as one of two: the sum is its own gradient, so the mean is half of it.
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        params = [torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16)) for _ in range(2)]
        params[0].grad = torch.full((2,), 3.0, dtype=torch.bfloat16)
        average_gradients(SimpleNamespace(accelerator=SimpleNamespace(num_processes=2)), params)  # type: ignore[arg-type]
    finally:
        dist.destroy_process_group()
    assert params[0].grad is not None and params[0].grad.tolist() == [1.5, 1.5]
    assert params[0].grad.dtype == torch.bfloat16
    assert params[1].grad is None, "no process had a gradient: the optimizer must skip it, not step on zeros"
