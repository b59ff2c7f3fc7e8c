"""Data-parallel training with two processes on the CPU (gloo), launched as users launch it.

`accelerate launch --cpu` starts one process whatever `--num_processes` says (its simple launcher);
several CPU processes come from the multi-process launcher with ACCELERATE_USE_CPU=1, which makes
accelerate connect them with gloo instead of NCCL, on any machine.

Two processes with batch 1 train what one process with batch 2 trains (the same global batches, every
sample's draws its own): the same loss lines and, within float tolerance, the same saved file, for a
LoRA and a fine-tune; and a two-process state resumes on one process as if never interrupted.
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
from backend.training.progress import parse_progress_line
from backend.training.schedulers import create_scheduler
from backend.training.step import average_gradients

from .finetune_helpers import ft_flags
from .helpers import REPO, TrainerResult, base_flags, make_images, run_trainer, trainer_env

STEPS = 4
LR = 1e-2
CHECKSUMS = re.compile(r"network checksums per process: (.+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(launcher_flags: list[str], trainer_args: list[str], timeout: int = 300,
           trainer: str = "train_network") -> TrainerResult:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", *launcher_flags, "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
        "--main_process_port", str(free_port()), "-m", f"backend.{trainer}", *trainer_args,
    ]
    env = {**trainer_env(), "ACCELERATE_USE_CPU": "1"}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    events = [e for e in map(parse_progress_line, result.stdout.splitlines()) if e is not None]
    return TrainerResult(result.returncode, events, result.stdout, result.stderr)


def launch_two(*trainer_args: str, trainer: str = "train_network") -> TrainerResult:
    return launch(["--multi_gpu", "--num_processes", "2"], list(trainer_args), trainer=trainer)


def assert_same_steps(result: TrainerResult, expected: TrainerResult) -> None:
    """The same loss lines (within float rounding: the processes' sums run in another order)."""
    fields = ("step", "epoch", "lr")
    assert [[e[f] for f in fields] for e in result.of("step")] == [[e[f] for f in fields] for e in expected.of("step")]
    for key in ("loss", "avr_loss"):
        assert [e[key] for e in result.of("step")] == pytest.approx([e[key] for e in expected.of("step")], rel=1e-5)


def assert_same_file(path: Path, expected: Path, atol: float) -> None:
    actual, wanted = load_file(path), load_file(expected)
    assert actual.keys() == wanted.keys()
    for key in wanted:
        torch.testing.assert_close(actual[key], wanted[key], rtol=0, atol=atol, msg=key)


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

    def make(out: Path, *extra: str, saves: bool = True) -> list[str]:
        saving = ["--save_every_n_steps", "2", "--save_state", "--sample_prompts", str(prompts),
                  "--sample_every_n_steps", "2"] if saves else []
        return base_flags(
            tiny.get("sd15").path, dataset, out, "--max_train_steps", str(STEPS), "--learning_rate", str(LR),
            "--network_dim", "4", "--lr_scheduler", "linear", "--lr_warmup_steps", "2", "--cache_latents_to_disk",
            *saving, *extra,
        )

    return make


@pytest.fixture(scope="module")
def two_process_run(flags, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainerResult]:
    out = tmp_path_factory.mktemp("mp-out")
    result = launch_two(*flags(out), "--ddp_timeout", "5")  # batch 1 each; the process group waits 5 minutes
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


@pytest.fixture(scope="module")
def one_process_run(flags, two_process_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainerResult]:
    """The two processes' global batch on one process (after them: their latent cache files are read)."""
    out = tmp_path_factory.mktemp("mp-one")
    result = run_trainer("train_network", *flags(out, "--train_batch_size", "2", saves=False))
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


@pytest.fixture(scope="module")
def resumed_run(flags, two_process_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainerResult]:
    """The two processes' state of step 2, resumed on one process with their global batch."""
    first_out, _ = two_process_run
    out = tmp_path_factory.mktemp("mp-resumed")
    state = str(first_out / "tiny-step00000002-state")
    result = run_trainer("train_network", *flags(out, "--train_batch_size", "2", "--resume", state, saves=False))
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
    # 3 images x 2 repeats = 6 samples: 3 global batches of 2, one sample of each per process: 3 steps.
    start = result.of("start")[0]
    assert start["num_batches_per_epoch"] == 3 and start["total"] == STEPS and start["epochs"] == 2
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
    assert record["global_step"] == 2 and record["batches_done_in_epoch"] == 2  # global batches
    assert (record["processes"], record["batch_sizes"], record["batches_in_epoch"]) == (2, [2], 3)


def test_the_main_process_caches_latents_and_the_other_reads_them(two_process_run):
    _, result = two_process_run
    assert result.stderr.count("latents: 3 encoded, 0 reused from cache files") == 1
    assert result.stderr.count("latents: 0 encoded, 3 reused from cache files") == 1
    assert {e["total"] for e in result.of("cache")} == {3}  # cache progress from one process only


def test_two_processes_train_what_one_process_with_their_global_batch_trains(two_process_run, one_process_run):
    (two_out, two), (one_out, one) = two_process_run, one_process_run
    assert one.of("start")[0]["num_batches_per_epoch"] == two.of("start")[0]["num_batches_per_epoch"]
    assert_same_steps(two, one)  # the reported loss: the mean over both processes' samples
    # AdamW turns gradients that are ~0 into steps of about +-lr whatever their rounding, so weights are
    # compared at 1e-3 (a run with other noise or batches differs by ~0.08; this one by ~1e-4).
    assert_same_file(two_out / "tiny.safetensors", one_out / "tiny.safetensors", atol=1e-3)


def test_a_two_process_state_resumes_on_one_process_as_if_uninterrupted(two_process_run, resumed_run):
    (first_out, first), (out, result) = two_process_run, resumed_run
    assert result.of("start")[0]["initial_step"] == 2
    assert [e["step"] for e in result.of("step")] == [3, 4]
    steps_before = {e["step"]: e for e in first.of("step")}
    for event in result.of("step"):  # the same batches, noise, optimizer and scheduler state
        assert event["loss"] == pytest.approx(steps_before[event["step"]]["loss"], rel=1e-5)
        assert event["lr"] == steps_before[event["step"]]["lr"] and event["epoch"] == steps_before[event["step"]]["epoch"]
    assert "global batch" not in result.stderr  # the same global batch: no warning
    assert_same_file(out / "tiny.safetensors", first_out / "tiny.safetensors", atol=1e-3)


@pytest.fixture(scope="module")
def fine_tunes(tiny, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainerResult, Path, TrainerResult]:
    """A fine-tune on 2 processes x batch 1 and on 1 process x batch 2, latents encoded in each step (the VAE
    posterior sample is drawn per sample too). Buckets of 2 images and 1: the second global batch has one
    sample, which one process trains while the other runs it weighted 0. SGD: the weights follow the gradients."""
    root = tmp_path_factory.mktemp("mp-fine-tune")
    model = tiny.get("sd15").path
    sizes = [(64, 64), (128, 64), (64, 64)]
    paths = make_images(root / "imgs", 3, sizes=sizes, caption=None)
    metadata = root / "meta.json"  # what prepare_buckets_latents writes, less the latents
    metadata.write_text(json.dumps({p.stem: {"caption": f"a girl, picture {i}", "train_resolution": list(size)}
                                    for i, (p, size) in enumerate(zip(paths, sizes, strict=True))}))

    def flags(out: Path, batch: int) -> list[str]:
        args = ft_flags(model, root / "imgs", metadata, out, "--max_train_steps", "3", "--optimizer_type", "SGD",
                        "--learning_rate", "1", "--train_batch_size", str(batch))
        return [a for a in args if a != "--cache_latents_to_disk"]

    two = launch_two(*flags(root / "two", 1), trainer="fine_tune")
    assert two.returncode == 0, two.stderr[-4000:]
    one = run_trainer("fine_tune", *flags(root / "one", 2))
    assert one.returncode == 0, one.stderr[-4000:]
    return root / "two", two, root / "one", one


def test_a_fine_tune_on_two_processes_is_the_one_process_fine_tune(fine_tunes):
    two_out, two, one_out, one = fine_tunes
    assert one.of("start")[0]["num_batches_per_epoch"] == two.of("start")[0]["num_batches_per_epoch"] == 2
    assert [e["epoch"] for e in two.of("step")] == [1, 1, 2]
    assert_same_steps(two, one)
    assert all(save[0] == save[1] for save in checksums(two))
    assert_same_file(two_out / "tiny.safetensors", one_out / "tiny.safetensors", atol=1e-5)


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


def test_a_video_lora_on_two_processes_is_the_one_process_lora(tiny, tmp_path) -> None:
    """train_video under accelerate launch: two processes with batch 1 train what one with batch 2 trains."""
    from tests.data.video.make_clips import write_clip

    data = tmp_path / "clips"
    for index in range(2):
        write_clip(data / f"clip{index}.mp4", frames=5, size=(64, 64), seed=index)
        (data / f"clip{index}.txt").write_text(f"a square, clip {index}", encoding="utf-8")

    def argv(out: str, batch: int) -> list[str]:
        return ["--model_name", "wan", "--pretrained_model_name_or_path", str(tiny.get("wan2.1-t2v-1.3b").path),
                "--data_root", str(data), "--video_resolution_buckets", "5x64x64", "--training_type", "lora",
                "--rank", "4", "--lr", "1e-2", "--train_steps", "2", "--checkpointing_steps", "100",
                "--transformer_dtype", "fp32", "--seed", "5", "--batch_size", str(batch),
                "--output_dir", str(tmp_path / out)]

    two = launch_two(*argv("two", 1), trainer="train_video")
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_trainer("train_video", *argv("one", 2))
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.losses().keys() == {1, 2}
    assert_same_steps(two, one)
    # Adam, as the image LoRA above: weights compared at 1e-3 (this run differs by ~2e-4).
    assert_same_file(tmp_path / "two" / "pytorch_lora_weights.safetensors",
                     tmp_path / "one" / "pytorch_lora_weights.safetensors", atol=1e-3)


def test_ddp_timeout_is_the_process_groups_timeout_in_minutes():
    import datetime

    from backend.options import parse_args
    from backend.training.run_setup import AcceleratorConfig, process_group_handlers

    base = ["--pretrained_model_name_or_path", "m", "--train_data_dir", "d", "--output_dir", "o"]
    args = parse_args("train_network", [*base, "--ddp_timeout", "90"])
    [handler] = process_group_handlers(AcceleratorConfig.from_args(args))
    assert handler.to_kwargs() == {"timeout": datetime.timedelta(minutes=90)}  # the backend stays accelerate's
    assert process_group_handlers(AcceleratorConfig.from_args(parse_args("train_network", base))) == []
