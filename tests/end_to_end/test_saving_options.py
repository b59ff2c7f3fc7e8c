"""Saving and scheduling options end to end: epoch saves with pruning, ckpt format and precision,
DyLoRA, gradient checkpointing and full bf16, samples at first and every n epochs from a TOML
prompt file, and --output_config."""

from __future__ import annotations

from pathlib import Path

import torch

from .helpers import base_flags, run_trainer


def test_epoch_saves_prune_and_other_formats(tiny, train_dir, tmp_path):
    prompts = tmp_path / "prompts.toml"
    prompts.write_text(
        '[prompt]\nwidth = 64\nheight = 64\nsample_steps = 2\n\n[[prompt.subset]]\nprompt = "sks dog"\nseed = 3\n'
    )
    out = tmp_path / "out"
    result = run_trainer(
        "train_network",
        *base_flags(tiny.get("sd15").path, train_dir, out,
                    "--max_train_epochs", "3", "--train_batch_size", "3", "--learning_rate", "1e-3",
                    "--network_module", "networks.dylora", "--network_dim", "4", "--network_args", "unit=2",
                    "--save_every_n_epochs", "1", "--save_last_n_epochs", "1", "--save_model_as", "ckpt",
                    "--save_precision", "fp16", "--gradient_checkpointing", "--mixed_precision", "bf16",
                    "--full_bf16", "--sample_prompts", str(prompts), "--sample_every_n_epochs", "2",
                    "--sample_at_first"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.ckpt")) == ["tiny-000002.ckpt", "tiny.ckpt"]
    weights = torch.load(out / "tiny.ckpt", map_location="cpu", weights_only=True)
    assert all(value.dtype == torch.float16 for key, value in weights.items() if not key.endswith(".alpha"))
    assert any(key.startswith("lora_unet_") and key.endswith(".lora_down.weight") for key in weights)
    samples = [(e["step"], e["epoch"]) for e in result.of("sample")]
    steps_per_epoch = result.of("start")[0]["num_batches_per_epoch"]
    assert samples == [(0, None), (2 * steps_per_epoch, 2)]
    assert all(Path(e["path"]).is_file() for e in result.of("sample"))


def test_output_config_writes_the_effective_options(tiny, train_dir, tmp_path):
    # sd-scripts semantics: with --output_config, --config_file names the file to write.
    written = tmp_path / "effective.toml"
    result = run_trainer(
        "train_network", "--config_file", str(written), "--output_config",
        "--pretrained_model_name_or_path", str(tiny.get("sd15").path), "--train_data_dir", str(train_dir),
        "--output_dir", str(tmp_path / "out"), "--learning_rate", "5e-5",
    )
    assert result.returncode == 0, result.stderr
    content = written.read_text()
    assert "learning_rate = 5e-05" in content and "train_data_dir" in content
    assert "output_config =" not in content and "config_file =" not in content
    assert not (tmp_path / "out").exists(), "--output_config only writes the config"

    rerun = run_trainer("train_network", "--config_file", str(written), "--preflight")
    assert rerun.returncode == 0, rerun.stderr


def test_save_n_epoch_ratio_and_a_state_window_of_its_own(tiny, train_dir, tmp_path):
    """6 epochs, --save_n_epoch_ratio 3: saves every 2 epochs; models keep 2 saves, states 1 (sd-scripts'
    --save_last_n_epochs_state)."""
    out = tmp_path / "out"
    result = run_trainer("train_network", *base_flags(
        tiny.get("sd15").path, train_dir, out, "--max_train_epochs", "6", "--train_batch_size", "3",
        "--save_every_n_epochs", "5", "--save_n_epoch_ratio", "3", "--save_last_n_epochs", "2", "--save_state",
        "--save_last_n_epochs_state", "1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["tiny-000002.safetensors", "tiny-000004.safetensors",
                                                                 "tiny.safetensors"]
    assert sorted(p.name for p in out.glob("*-state")) == ["tiny-000004-state"]


def test_the_state_windows_fall_back_to_the_models_as_in_sd_scripts():
    from backend.training.checkpoints import SaveConfig

    base = SaveConfig("out", "x", "safetensors", None, 1, 10, 3, 20, True, False)
    assert (base.state_last_n_epochs, base.state_last_n_steps) == (3, 20)
    own = SaveConfig("out", "x", "safetensors", None, 1, 10, 3, 20, True, False, None, 0, 5)
    assert (own.state_last_n_epochs, own.state_last_n_steps) == (3, 5)  # 0: the models' window
    assert SaveConfig("o", "x", "safetensors", None, 4, None, None, None, False, False, 8).for_epochs(3) \
        .save_every_n_epochs == 1  # floor(3 / 8) = 0: every epoch
