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
