"""What preflight refuses that used to pass it and fail only once the model was loaded (with a traceback),
or crash preflight itself: a damaged or foreign --network_weights file, a --resume state with a damaged
file, schedule/noise/loss settings that do not go together, conflicting optimizer flags. And the same
report in Japanese. In-process, nothing here gets as far as loading a model."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from backend import messages
from backend.training.command import run_command


def preflight(capsys, model: Path, train_dir: Path, out: Path, *extra: str) -> dict:
    code = run_command("train_network", [
        "--pretrained_model_name_or_path", str(model), "--train_data_dir", str(train_dir), "--output_dir", str(out),
        "--resolution", "64", "--caption_extension", ".txt", "--preflight", *extra,
    ])
    report = json.loads(capsys.readouterr().out)
    assert code == (0 if report["ok"] else 1)
    return report


def lora_file(path: Path) -> Path:
    save_file({"lora_unet_mid_block_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8),
               "lora_unet_mid_block_attentions_0_proj_in.lora_up.weight": torch.zeros(8, 4)}, str(path))
    return path


def test_network_weights_are_checked_before_training(capsys, tiny, train_dir, tmp_path):
    model = tiny.get("sd15").path
    good = lora_file(tmp_path / "good.safetensors")
    assert preflight(capsys, model, train_dir, tmp_path, "--network_weights", str(good))["errors"] == []

    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-100])
    [error] = preflight(capsys, model, train_dir, tmp_path, "--network_weights", str(cut))["errors"]
    assert error.startswith(f"--network_weights cannot be used: {cut}: the file ends after") and "cut short" in error

    vae = tmp_path / "vae.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(2), "decoder.conv_in.weight": torch.zeros(2)}, str(vae))
    [error] = preflight(capsys, model, train_dir, tmp_path, "--network_weights", str(vae))["errors"]
    assert error.startswith(f"--network_weights {vae}: none of its 2 tensors is a network weight")
    assert "convert_lora --to kohya" in error

    sdxl = tmp_path / "sdxl.safetensors"  # an SDXL LoRA (SGM block names, two text encoders) on an SD 1.5 model
    save_file({"lora_unet_input_blocks_4_1_proj_in.lora_down.weight": torch.zeros(4, 8),
               "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(4, 8)}, str(sdxl))
    [error] = preflight(capsys, model, train_dir, tmp_path, "--network_weights", str(sdxl))["errors"]
    assert error.startswith(f"--network_weights {sdxl}: this network was trained on SDXL") and "SD 1.x" in error


def test_network_weights_of_another_rank_are_refused_before_training(capsys, tiny, train_dir, tmp_path):
    model, lora = tiny.get("sd15").path, lora_file(tmp_path / "rank4.safetensors")
    [error] = preflight(capsys, model, train_dir, tmp_path, "--network_weights", str(lora), "--network_dim", "8")["errors"]
    assert error.startswith(f"--network_weights {lora}: its LoRA has rank 4 but this run builds rank 8")
    assert "--dim_from_weights" in error
    for fits in (["--network_dim", "4"], ["--network_dim", "8", "--dim_from_weights"]):
        assert preflight(capsys, model, train_dir, tmp_path, "--network_weights", str(lora), *fits)["errors"] == []


def test_a_resume_state_with_a_damaged_file_is_refused(capsys, tiny, train_dir, tmp_path):
    state = tmp_path / "tiny-state"
    state.mkdir()
    (state / "train_state.json").write_text(json.dumps({"global_step": 1, "epoch": 1, "seed": 7}))
    with zipfile.ZipFile(state / "optimizer.bin", "w") as archive:  # torch.save's format: a zip
        archive.writestr("optimizer/data.pkl", b"x" * 1000)
    whole = (state / "optimizer.bin").read_bytes()
    (state / "optimizer.bin").write_bytes(whole[: len(whole) // 2])  # a copy that stopped halfway
    [error] = preflight(capsys, tiny.get("sd15").path, train_dir, tmp_path, "--resume", str(state))["errors"]
    assert error.startswith(f"--resume {state}: the state is damaged ({state / 'optimizer.bin'}: the file is cut")
    assert "without --resume" in error


def test_settings_the_run_would_refuse_after_loading_are_refused_in_preflight(capsys, tiny, train_dir, tmp_path):
    report = preflight(capsys, tiny.get("sd15").path, train_dir, tmp_path, "--lr_scheduler", "constant",
                       "--lr_warmup_steps", "10", "--adaptive_noise_scale", "0.1", "--use_8bit_adam",
                       "--use_lion_optimizer")
    assert report["errors"] == [
        "--use_8bit_adam and --use_lion_optimizer cannot be used together",
        "lr_scheduler constant does not use lr_warmup_steps (got 10 steps); use lr_scheduler constant_with_warmup, "
        "or set lr_warmup_steps to 0",
        "adaptive_noise_scale requires noise_offset",
    ]


@pytest.fixture
def japanese():
    messages.set_language("ja")
    yield
    messages.set_language(None)


def test_the_report_in_japanese(capsys, japanese, tiny, train_dir, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be")
    report = preflight(capsys, tiny.get("sd15").path, train_dir, blocker, "--lr_scheduler", "constant",
                       "--lr_warmup_steps", "10")
    schedule, output = report["errors"]
    assert schedule == ("lr_scheduler constant は lr_warmup_steps を使いません（10 ステップが指定されています）。"
                        "lr_scheduler constant_with_warmup を使うか、lr_warmup_steps を 0 にしてください")
    assert output.startswith(f"--output_dir {blocker} はフォルダではなくファイルです。")


def test_network_weights_of_sdxl_or_flux_are_told_apart(tmp_path):
    """SDXL's and FLUX.1's files both name CLIP-L `lora_te1_`: the denoiser's names decide."""
    from backend.training.input_files import network_weights_problem

    def lora(name: str, *keys: str) -> Path:
        path = tmp_path / name
        save_file({f"{key}.lora_down.weight": torch.zeros(4, 8) for key in keys}, str(path))
        return path

    clip = "lora_te1_text_model_encoder_layers_0_mlp_fc1"
    sdxl = lora("sdxl.safetensors", "lora_unet_input_blocks_4_1_proj_in", clip)
    flux = lora("flux.safetensors", "lora_unet_double_blocks_0_img_attn_qkv", clip)
    clip_only = lora("clip.safetensors", clip)
    error = network_weights_problem(sdxl, "flux_dev")
    assert error is not None and "trained on SDXL" in error and "FLUX.1 [dev]" in error
    error = network_weights_problem(flux, "sdxl")
    assert error is not None and "trained on FLUX.1" in error
    assert [network_weights_problem(path, family) for path, family in
            ((flux, "flux_schnell"), (clip_only, "flux_dev"), (clip_only, "sdxl"))] == [None, None, None]


def test_flux_network_args_are_checked_by_the_flux_layout(capsys, tiny, train_dir, tmp_path):
    """networks.lora on FLUX.1 reads sd-scripts' lora_flux keys: preflight accepts them and names why an
    SD-only key means nothing there."""
    model = tiny.get("flux-dev", single_file=True)

    def flux_preflight(*network_args: str) -> dict:
        code = run_command("flux_train_network", [
            "--pretrained_model_name_or_path", str(model.path), *model.trainer_flags()[2:],
            "--train_data_dir", str(train_dir), "--output_dir", str(tmp_path), "--resolution", "64",
            "--caption_extension", ".txt", "--network_module", "networks.lora_flux", "--preflight",
            "--network_args", *network_args,
        ])  # fmt: skip
        report = json.loads(capsys.readouterr().out)
        assert code == (0 if report["ok"] else 1)
        return report

    assert flux_preflight("img_attn_dim=8", "split_qkv=True", "train_blocks=single")["errors"] == []
    [error] = flux_preflight("conv_dim=4")["errors"]
    assert "conv_dim" in error and "FLUX.1's transformer has no convolutions" in error


def test_preflight_of_cpu_offload_checkpointing(capsys, tiny, train_dir, tmp_path) -> None:
    model = tiny.get("flux-dev", single_file=True)

    def preflight(*extra: str) -> dict:
        code = run_command("flux_train_network", [
            *model.trainer_flags(), "--train_data_dir", str(train_dir), "--output_dir", str(tmp_path),
            "--resolution", "64", "--caption_extension", ".txt", "--network_module", "networks.lora", "--preflight",
            "--cpu_offload_checkpointing", *extra,
        ])  # fmt: skip
        report = json.loads(capsys.readouterr().out)
        assert code == (0 if report["ok"] else 1)
        return report

    report = preflight()
    assert report["errors"] == []
    assert any("turns --gradient_checkpointing on" in w for w in report["warnings"])
    assert any("no CUDA GPU, so there is nothing to offload" in w for w in report["warnings"])
    errors = preflight("--gradient_checkpointing", "--blocks_to_swap", "2")["errors"]
    assert any("cannot be combined with --blocks_to_swap" in e for e in errors), errors


def test_lycoris_network_args_on_flux_pass_preflight(capsys, tiny, train_dir, tmp_path):
    """lycoris.kohya on FLUX.1: its keys (algo, preset, factor, conv_dim, ...) pass; train_norm, whose norm layers
    the BFL view does not hold, is refused before loading."""
    model = tiny.get("flux-dev", single_file=True)

    def lycoris_preflight(*network_args: str) -> dict:
        code = run_command("flux_train_network", [
            "--pretrained_model_name_or_path", str(model.path), *model.trainer_flags()[2:],
            "--train_data_dir", str(train_dir), "--output_dir", str(tmp_path), "--resolution", "64",
            "--caption_extension", ".txt", "--network_module", "lycoris.kohya", "--preflight",
            "--network_args", *network_args,
        ])  # fmt: skip
        report = json.loads(capsys.readouterr().out)
        assert code == (0 if report["ok"] else 1)
        return report

    report = lycoris_preflight("algo=lokr", "preset=attn-mlp", "factor=8", "conv_dim=4", "dora_wd=True")
    assert report["errors"] == [] and not any("not read by" in w for w in report["warnings"]), report
    [error] = lycoris_preflight("algo=locon", "train_norm=True")["errors"]
    assert "train_norm" in error and "FLUX.1" in error
