"""The pieces that keep a run from losing work or writing bad files, each on its own (no training):
the non-finite weights check, output-folder and free-space checks, the rescue folder, leftovers of
interrupted saves, and the record that ties a training state to its run."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch

from backend.finite_weights import NonFiniteWeightsError, check_weights
from backend.networks.weights_io import save_weights_file
from backend.training import output_space, rescue
from backend.training.checkpoints import SaveConfig
from backend.training.leftovers import SAMPLE_FOLDER, is_leftover, remove_leftovers
from backend.training.method_options import NetworkConfig
from backend.training.optimizers import OptimizerConfig
from backend.training.output_space import SaveCounts, folder_problem, save_counts, space_problem, state_bytes
from backend.training.resume_check import record_mismatches, run_record, shape_differences

NAN, INF = float("nan"), float("inf")


# --- non-finite weights ------------------------------------------------------------------------------
def test_check_weights_finds_nan_inf_and_values_the_save_precision_cannot_hold():
    tensors = {
        "fine": torch.ones(3), "nan": torch.tensor([1.0, NAN]), "inf": torch.tensor([-INF, 0.0]),
        "big": torch.tensor([7e4]), "half": torch.tensor([NAN], dtype=torch.float16), "ints": torch.tensor([1, 2]),
    }
    problems = check_weights(tensors)
    assert (problems.nonfinite, problems.overflow, problems.checked) == (["nan", "inf", "half"], [], 5)
    as_fp16 = check_weights(tensors, torch.float16)
    assert as_fp16.overflow == ["big"] and "65504" in as_fp16.describe() and "fp16" in as_fp16.describe()
    assert not check_weights({"big": torch.tensor([7e4])}, torch.bfloat16)
    assert not check_weights({"fine": torch.ones(2)})


def test_save_weights_file_refuses_non_finite_weights_and_writes_nothing(tmp_path):
    target = tmp_path / "lora.safetensors"
    with pytest.raises(NonFiniteWeightsError, match=r"lora\.safetensors was not written: 1 of 2 tensors"):
        save_weights_file(target, {"a.lora_up.weight": torch.tensor([NAN]), "a.alpha": torch.tensor(1.0)})
    with pytest.raises(NonFiniteWeightsError, match="become infinite when saved as fp16"):
        save_weights_file(target, {"a.lora_up.weight": torch.tensor([1e5])}, torch.float16)
    assert list(tmp_path.iterdir()) == []


def test_a_fine_tune_checks_its_raw_and_ema_weights(tiny):
    from backend.models.loading import load_components
    from backend.options import parse_command_line
    from backend.training.finetune_method import FineTuneTraining, part_learning_rates, source_states
    from backend.training.method_options import FineTuneConfig

    config = FineTuneConfig.from_args(parse_command_line(
        "fine_tune", ["--pretrained_model_name_or_path", "m", "--output_dir", "o", "--ema", "--ema_save", "beside"]))
    components = load_components(tiny.get("sd15").path)
    rates = part_learning_rates(config, 1)
    method = FineTuneTraining(config, components, rates, source_states(components, set(rates)))
    assert not method.weight_problems(None)
    name = next(iter(method.ema.averages))
    method.ema.averages[name][...] = NAN
    assert method.weight_problems(None).nonfinite == [f"EMA {name}"]
    with torch.no_grad():
        next(components.unet.parameters()).fill_(INF)
    problems = method.weight_problems(None)
    assert len(problems.nonfinite) == 2 and problems.nonfinite[0].startswith("unet.")
    sizes = method.saved_bytes(torch.float16)
    total = sum(t.numel() for m in (components.unet, components.vae, *components.text_encoders)
                for t in m.state_dict().values())
    assert sizes == 2 * 2 * total  # fp16, and the EMA file beside the model


# --- output folders and free space ---------------------------------------------------------------------
def test_folder_problem_says_when_a_file_is_in_the_way(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert "is a file, not a folder" in folder_problem("--output_dir", blocker)
    problem = folder_problem("--output_dir", blocker / "out" / "deeper")
    assert f"cannot be created: {blocker} is a file" in problem
    assert folder_problem("--output_dir", tmp_path / "new" / "nested") is None
    assert not (tmp_path / "new").exists()  # checked, not created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]  # the probe file is gone


def test_folder_problem_on_a_read_only_file_system(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, *args, **kwargs):  # what the kernel answers on a read-only mount (root included)
        if "write-check" in str(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    problem = folder_problem("--logging_dir", tmp_path / "logs")
    assert f"--logging_dir {tmp_path / 'logs'}: cannot write there (it would be created in {tmp_path})" in problem
    assert "read-only file system" in problem


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permission bits do not stop root")
def test_folder_problem_on_a_folder_without_write_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        assert "permission denied" in folder_problem("--output_dir", locked)
    finally:
        locked.chmod(0o755)


def saving(**values) -> SaveConfig:
    defaults = dict(output_dir="out", output_name=None, save_model_as="safetensors", save_precision=None,
                    save_every_n_epochs=None, save_every_n_steps=None, save_last_n_epochs=None,
                    save_last_n_steps=None, save_state=False, save_state_on_train_end=False)
    return SaveConfig(**{**defaults, **values})


def test_save_counts_follow_the_saving_and_pruning_options():
    assert save_counts(saving(), 100, 10) == SaveCounts(1, 0)
    assert save_counts(saving(save_every_n_epochs=2), 100, 10) == SaveCounts(5, 0)  # epochs 2, 4, 6, 8 + final
    # Keeping 2: while the third is written, the oldest still exists.
    assert save_counts(saving(save_every_n_epochs=1, save_last_n_epochs=2), 100, 10) == SaveCounts(4, 0)
    assert save_counts(saving(save_every_n_steps=10, save_last_n_steps=20, save_state=True,
                              save_state_on_train_end=True), 100, 1) == SaveCounts(4, 4)


def test_space_problem_names_the_sizes_and_what_to_do(tmp_path, monkeypatch):
    counts = SaveCounts(models=3, states=2)
    assert space_problem(tmp_path, counts, 10, 10) is None
    monkeypatch.setattr(output_space.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 90, 2**20))
    problem = space_problem(tmp_path / "out", counts, 2**30, 3 * 2**30)
    assert problem.startswith(f"--output_dir {tmp_path / 'out'}: only 1.0 MiB free, but this run saves about 9.00 GiB")
    assert "3 model files of about 1.00 GiB and 2 training states of about 3.00 GiB" in problem
    assert "--save_precision" in problem
    assert state_bytes(1000, "AdamW", ema=False) == 12_000 and state_bytes(1000, "AdamW8bit", ema=True) == 10_000


def test_fine_tune_sizes_are_read_from_the_model_headers(tiny):
    parts = output_space.model_part_sizes(tiny.get("sd15").path)
    assert set(parts) == {"unet", "vae", "text_encoder1"}
    single = output_space.model_part_sizes(tiny.get("sd15", single_file=True).path)
    assert {part: numel for part, (numel, _) in single.items()} == {part: numel for part, (numel, _) in parts.items()}


# --- the rescue folder -----------------------------------------------------------------------------------
def test_write_failures_are_told_from_bugs(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(Exception) as safetensors_error:
        save_file({"a": torch.zeros(1)}, str(tmp_path / "missing" / "x.safetensors"))
    assert rescue.is_write_failure(safetensors_error.value)
    assert rescue.is_write_failure(OSError(errno.ENOSPC, "No space left on device"))
    assert rescue.is_write_failure(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576"))
    assert not rescue.is_write_failure(RuntimeError("size mismatch")) and not rescue.is_write_failure(KeyError("x"))
    assert "disk is full" in rescue.failure_reason(OSError(errno.ENOSPC, "No space left on device"))
    assert "disk is full" in rescue.failure_reason(RuntimeError("I/O error: No space left on device (os error 28)"))


def test_the_rescue_folder_is_the_first_candidate_that_can_take_the_save(tmp_path, monkeypatch):
    home, temp = tmp_path / "home", tmp_path / "temp"
    home.write_text("not a folder")  # the home cannot take it: the temporary folder does
    temp.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(rescue.tempfile, "gettempdir", lambda: str(temp))
    folder, refused = rescue.choose_rescue_folder("tiny", 10, tmp_path / "out")
    assert folder is not None and folder.parent == temp / "kohya_rescued" and folder.is_dir()
    assert folder.name.startswith("tiny-") and "is a file" in refused[0]
    monkeypatch.setattr(rescue.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 100, 0))
    folder, refused = rescue.choose_rescue_folder("tiny", 10, tmp_path / "out")
    assert folder is None and "only 0.0 MiB free" in refused[1]


# --- leftovers of interrupted saves ----------------------------------------------------------------------
def test_only_our_leftovers_are_removed_and_recent_ones_are_left(tmp_path):
    ours_files = [".tiny.safetensors.0a1b2c3d.tmp", ".tiny.safetensors.0a1b2c3d.tmp.safetensors",
                  "tiny.partial-4242.safetensors", ".run.toml.deadbeef.tmp"]
    ours_dirs = [".tiny.safetensors.ab_9xyz1.tmp", ".tiny.ab_9xyz1.old", "tiny-step00000010-state.partial",
                 "tiny-state.old"]
    theirs = [".notes.tmp", ".tiny.safetensors.0A1B2C3D.tmp", "tiny.partial.safetensors", "tiny-state",
              "tiny.safetensors", ".tmpAbC123"]  # the last: a name safetensors uses, but not its content
    for name in ours_files + theirs[:-1]:
        (tmp_path / name).mkdir() if name == "tiny-state" else (tmp_path / name).write_text("x")
    (tmp_path / ".tmpAbC123").write_text("not a safetensors file")
    (tmp_path / ".tmpXyZ789").write_bytes((2).to_bytes(8, "little") + b"{}")  # one of safetensors' own
    for name in ours_dirs:
        (tmp_path / name).mkdir()
        (tmp_path / name / "inside.bin").write_text("x")
    (tmp_path / SAMPLE_FOLDER).mkdir()
    (tmp_path / SAMPLE_FOLDER / ".tiny_000001_00.png.12345678.tmp").write_text("x")
    for path in [*tmp_path.rglob("*")]:
        os.utime(path, (1e9, 1e9))
    (tmp_path / "tiny-state.old" / "inside.bin").write_text("written just now")  # a save in progress?

    found = remove_leftovers([tmp_path, tmp_path / SAMPLE_FOLDER, tmp_path / "missing"])
    assert sorted(p.name for p in found.recent) == ["tiny-state.old"]
    assert sorted(p.name for p in found.removed) == sorted(
        [*ours_files, *ours_dirs[:-1], ".tmpXyZ789", ".tiny_000001_00.png.12345678.tmp"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*theirs, "tiny-state.old", SAMPLE_FOLDER])
    assert not is_leftover(tmp_path / "tiny.safetensors")


def test_leftovers_know_the_sample_folder_name():
    from backend.training.sampling import SAMPLE_FOLDER as sampling_folder

    assert sampling_folder == SAMPLE_FOLDER


# --- the record that ties a state to its run ------------------------------------------------------------
def test_record_mismatches_name_the_options_that_differ():
    saved = {"method": "network", "family": "sd1", "optimizer": "AdamW", "network_dim": 8, "network_alpha": 1.0,
             "network_args": {"conv_dim": "4"}}
    current = {**saved, "network_dim": 4, "network_args": {}, "family": None}
    assert record_mismatches(saved, current) == [
        "--network_dim: 8 in the state, 4 in this run", "--network_args: conv_dim=4 in the state, (none) in this run"]
    assert record_mismatches({"method": "fine_tune"}, current) == [
        "training method: a full fine-tune in the state, a network (LoRA) training in this run"]
    assert record_mismatches(saved, dict(saved)) == []


def test_the_record_lets_a_resume_change_the_dropouts_only():
    """Dropouts change neither the weights nor the optimizer's groups; block lr weights and LoRA+ ratios do."""
    from backend.options import parse_args

    def network_args(*items: str) -> dict[str, str]:
        argv = ["--pretrained_model_name_or_path", "m", "--output_dir", "o", "--network_module", "networks.lora"]
        args = parse_args("train_network", [*argv, "--network_args", "conv_dim=4", *items])
        return run_record(NetworkConfig.from_args(args), OptimizerConfig.from_args(args), "sd1")["network_args"]

    assert network_args("dropout=0.1", "rank_dropout=0.2", "module_dropout=0.3") == {"conv_dim": "4"}
    assert network_args("loraplus_lr_ratio=4", "down_lr_weight=0,1,1,1,1,1,1,1,1,1,1,1") == {
        "conv_dim": "4", "down_lr_weight": "0,1,1,1,1,1,1,1,1,1,1,1", "loraplus_lr_ratio": "4"}


def test_shape_differences_count_and_show_an_example():
    saved = {"a.lora_down.weight": torch.zeros(8, 320), "b.alpha": torch.tensor(1.0), "gone": torch.zeros(1)}
    current = {"a.lora_down.weight": torch.zeros(4, 320), "b.alpha": torch.tensor(2.0), "new": torch.zeros(1)}
    assert shape_differences(saved, current) == [
        "1 of 3 weights have another shape (e.g. a.lora_down.weight: 8x320 in the state, 4x320 in this run)",
        "1 weights of this run are not in the state (e.g. new)",
        "1 weights in the state are not in this run (e.g. gone)",
    ]


def test_optimizer_differences_tell_another_optimizer_type():
    from backend.training.resume_check import optimizer_differences

    params = [torch.nn.Parameter(torch.zeros(2))]
    adamw, sgd = torch.optim.AdamW(params), torch.optim.SGD(params, lr=0.1, momentum=0.9)
    assert optimizer_differences(adamw.state_dict(), torch.optim.AdamW(params)) == []
    [difference] = optimizer_differences(adamw.state_dict(), sgd)
    assert "another type" in difference and "betas" in difference and "momentum" in difference
    two_groups = torch.optim.AdamW([{"params": params}, {"params": [torch.nn.Parameter(torch.zeros(1))]}])
    assert "2 parameter groups in the state, 1 in this run" in optimizer_differences(two_groups.state_dict(), adamw)[0]


def test_a_folder_whose_replacement_was_killed_halfway_is_restored_not_removed(tmp_path):
    """Killed between `X -> X.old` and `new -> X`: the leftover is the only copy of X."""
    def state(path: Path, step: int) -> Path:
        path.mkdir()
        (path / "train_state.json").write_text(f'{{"global_step": {step}}}')
        return path

    state(tmp_path / "a-state.old", 4)
    state(tmp_path / "a-state.partial", 8)  # complete (its record is written last): the newest state
    state(tmp_path / "b-state.old", 4)
    (tmp_path / "c-state.partial").mkdir()  # incomplete: no record
    model = tmp_path / ".tiny.ab12cd34.old" / "tiny"
    model.mkdir(parents=True)
    (model / "model_index.json").write_text("{}")
    for path in tmp_path.rglob("*"):
        os.utime(path, (1e9, 1e9))

    found = remove_leftovers([tmp_path])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-state", "b-state", "tiny"]
    assert (tmp_path / "a-state" / "train_state.json").read_text() == '{"global_step": 8}'
    assert (tmp_path / "tiny" / "model_index.json").is_file()
    assert sorted(final.name for _, final in found.restored) == ["a-state", "b-state", "tiny"]
    assert sorted(p.name for p in found.removed) == [".tiny.ab12cd34.old", "a-state.old", "c-state.partial"]


def test_the_rescuing_writer_tries_each_rescue_folder_then_says_the_save_is_lost(tmp_path, monkeypatch):
    home, temp, out = tmp_path / "home", tmp_path / "temp", tmp_path / "out"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(rescue.tempfile, "gettempdir", lambda: str(temp))
    moves: list[Path] = []
    full = {out, home}  # disks that are full: the output folder's and the home's

    def write(path: Path) -> None:
        if any(disk in path.parents for disk in full):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        path.write_text("weights")

    writer = rescue.RescuingWriter(out, "tiny", moves.append)
    saved = writer.write(out / "tiny-000001.safetensors", write, 10, step=5)
    assert saved.parent.parent == temp / "kohya_rescued" and saved.read_text() == "weights" and moves[-1] == saved.parent
    assert not list((home / "kohya_rescued").iterdir())  # the home's folder that failed is not left behind
    assert writer.write(saved.parent / "tiny.safetensors", write, 10, step=6).parent == saved.parent
    error = writer.finished_error(saved.parent / "tiny.safetensors", step=6)
    assert "the disk is full" in error.message and "tiny-000001.safetensors, tiny.safetensors" in error.message
    assert error.output == str(saved.parent / "tiny.safetensors") and "Free space" in error.hint

    full.add(temp)
    with pytest.raises(rescue.OutputNotWritable, match="the weights of this save are lost") as lost:
        rescue.RescuingWriter(out, "tiny", moves.append).write(out / "tiny.safetensors", write, 10, step=7)
    assert str(home / "kohya_rescued") in lost.value.message and str(temp / "kohya_rescued") in lost.value.message


def test_divergence_causes_fit_the_run_settings():
    from backend.training.run_errors import DivergenceConfig, divergence_causes

    plain = DivergenceConfig(learning_rate=1e6, max_grad_norm=1.0, mixed_precision="no")
    causes = divergence_causes(plain, "AdamW")
    assert "too high for AdamW (--learning_rate 1e+06): try a tenth of it" in causes
    assert "fp16" not in causes and "broken training data" in causes
    fp16 = DivergenceConfig(learning_rate=2.0, text_encoder_lr=[1.0], max_grad_norm=0.0, mixed_precision="fp16")
    causes = divergence_causes(fp16, "Prodigy")
    assert "expects about 1.0" in causes and "--text_encoder_lr 1" in causes and "--max_grad_norm 1.0" in causes
    assert "--mixed_precision bf16" in causes and "--no_half_vae" in causes


def test_with_several_processes_a_state_the_disk_refuses_stops_the_run_with_a_clear_error(tmp_path):
    """Every process writes its part of a state into one folder, so states are not rescued there: the run
    stops with an error that says so (not a traceback about a zip writer), naming the last model saved."""
    from types import SimpleNamespace

    from backend.training.loop import Trainer

    class FullDisk:  # accelerate's Accelerator as save_state uses it, on a disk that is full
        num_processes, is_main_process = 2, True

        def wait_for_everyone(self) -> None:
            pass

        def save_state(self, folder: str) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), folder)

    class Group:  # the run's batches: one dataset, 3 global batches of 2
        datasets = [SimpleNamespace(batch_size=2)]

        def __len__(self) -> int:
            return 3

    trainer = Trainer.__new__(Trainer)  # only what save_training_state reads
    trainer.run = SimpleNamespace(seed=1, state_record={"method": "network"}, accelerator=FullDisk(), group=Group())
    trainer.global_step, trainer._weights_checked_at = 4, (4, None)  # weights checked finite at this step
    trainer.last_save = (tmp_path / "tiny-step00000004.safetensors", 4)
    with pytest.raises(rescue.OutputNotWritable) as stopped:
        trainer.save_training_state(tmp_path / "tiny-step00000004-state", epoch=1, batches_done=4)
    assert "could not save the training state" in stopped.value.message and "the disk is full" in stopped.value.message
    assert "not saved to a rescue folder" in stopped.value.message and "Free space" in stopped.value.hint
    assert stopped.value.output == str(tmp_path / "tiny-step00000004.safetensors") and stopped.value.step == 4
    assert not list(tmp_path.iterdir())  # no half-written state folder left


def test_messages_in_japanese_keep_their_values_and_their_meaning():
    """The process language (the GUI sets it for the trainer it starts) changes the words, not the logic: the
    disk-full hint is chosen by the reason's message id, which is the same in every language."""
    from backend import messages
    from backend.training.run_errors import DivergenceConfig, divergence_causes

    messages.set_language("ja")
    full = rescue.failure_reason(OSError(errno.ENOSPC, "No space left on device"))
    assert full == "ディスクがいっぱいです（デバイスに空き容量がありません）"
    assert rescue.output_hint(full).startswith("次の学習の前に、そのディスクの空き容量を増やしてください")
    assert rescue.output_hint(rescue.failure_reason(OSError(errno.EROFS, "ro"))).startswith(
        "次の学習の前に、フォルダを書き込み可能にするか")
    causes = divergence_causes(DivergenceConfig(learning_rate=1e6, max_grad_norm=0.0, mixed_precision="no"), "AdamW")
    assert causes.startswith("考えられる原因: (1) AdamW に対して学習率が高すぎます（--learning_rate 1e+06）: 10 分の 1 に")
    assert "(2) 勾配クリッピングがオフです: 元に戻してください（--max_grad_norm 1.0）" in causes
