"""sd-scripts' DeepSpeed flags: accelerate's DeepSpeedPlugin built from them as library/deepspeed_utils.py builds it,
and what preflight refuses. The plugin is accelerate's own object (it needs no deepspeed package to exist); a real
DeepSpeed run is tests/end_to_end/test_deepspeed_run.py, which runs where deepspeed is installed."""

from __future__ import annotations

import argparse
import importlib.util

import pytest

from backend.options import parse_args
from backend.options.errors import OptionError
from backend.training.deepspeed_plugin import (
    DeepSpeedConfig,
    deepspeed_problems,
    make_plugin,
    single_process_environment,
)
from backend.training.sharded import launch_problems


def config(*flags: str, command: str = "sdxl_train") -> DeepSpeedConfig:
    return DeepSpeedConfig.from_args(parse_args(command, ["--pretrained_model_name_or_path", "m", "--output_dir", "o", *flags]))


def test_the_plugin_is_sd_scripts_mapping_of_the_flags() -> None:
    plugin = make_plugin(config("--deepspeed", "--mixed_precision", "fp16", "--train_batch_size", "3",
                                "--max_grad_norm", "0.5", "--offload_optimizer_device", "cpu",
                                "--fp16_master_weights_and_gradients"), processes=4)
    settings = plugin.deepspeed_config
    assert settings["zero_optimization"]["stage"] == 2  # sd-scripts' default
    assert settings["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert settings["gradient_clipping"] == 0.5
    assert settings["gradient_accumulation_steps"] == 1
    assert settings["train_micro_batch_size_per_gpu"] == 3
    assert settings["train_batch_size"] == 3 * 1 * 4  # batch x accumulation x processes
    assert settings["fp16"]["enabled"] and settings["fp16"]["initial_scale_power"] == 0
    assert settings["fp16"]["fp16_master_weights_and_grads"] is True  # cpu offload + stage 2 only
    assert not settings["bf16"]["enabled"]


def test_fp16_master_weights_only_with_cpu_offload_at_stage_2() -> None:
    plugin = make_plugin(config("--deepspeed", "--zero_stage", "1", "--mixed_precision", "bf16", "--full_fp16",
                                "--offload_optimizer_device", "cpu"), processes=1)
    settings = plugin.deepspeed_config
    assert settings["zero_optimization"]["stage"] == 1
    assert settings["bf16"]["enabled"] and "fp16_master_weights_and_grads" not in settings["fp16"]
    assert make_plugin(config("--zero_stage", "1"), processes=1) is None  # no plugin without --deepspeed


def test_preflight_without_the_deepspeed_package(monkeypatch) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else found(name, *a))
    errors, _ = deepspeed_problems(config("--deepspeed"), "AdamW")
    assert errors == ["--deepspeed: the deepspeed package is not installed; setup does not install it. Install it "
                      "into this project's venv: DS_BUILD_OPS=0 venv/bin/pip install deepspeed (it needs a C++ "
                      "compiler; meant for CUDA GPUs). See docs/multi-gpu.md"]


def test_what_deepspeed_would_refuse_or_ignore_is_said_before_the_run(monkeypatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())  # as if installed
    errors, warnings = deepspeed_problems(config("--deepspeed", "--offload_optimizer_device", "cpu",
                                                 "--fp16_master_weights_and_gradients", "--zero3_init_flag"), "AdamW")
    assert errors == [
        "--offload_optimizer_device cpu: DeepSpeed steps an offloaded optimizer state only with its own CPU "
        "optimizers, not AdamW; use --optimizer_type deepspeed.ops.adam.DeepSpeedCPUAdam or "
        "deepspeed.ops.lion.DeepSpeedCPULion",
        "--fp16_master_weights_and_gradients needs --mixed_precision fp16",
    ]
    assert warnings == ["--zero3_init_flag: options of ZeRO stage 3, which this trainer refuses; no effect"]
    errors, warnings = deepspeed_problems(config("--deepspeed", "--zero_stage", "1", "--mixed_precision", "fp16",
                                                 "--offload_optimizer_device", "nvme", "--full_fp16"), "AdamW")
    assert errors[0].startswith("--offload_optimizer_device nvme: DeepSpeed offloads the optimizer state to NVMe "
                                "with ZeRO stage 3 only")
    assert warnings == ["--full_fp16 with --deepspeed: DeepSpeed keeps fp16 master weights and gradients only with "
                        "--offload_optimizer_device cpu and --zero_stage 2; the master weights stay fp32"]
    assert deepspeed_problems(config("--zero_stage", "1"), "AdamW") == (
        [], ["--zero_stage: no effect without --deepspeed"])


def test_refused_combinations(monkeypatch) -> None:
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    args = parse_args("sdxl_train", ["--pretrained_model_name_or_path", "m", "--output_dir", "o", "--deepspeed", "--zero_stage", "3",
                                     "--gradient_accumulation_steps", "2"])
    assert launch_problems(args, "sdxl_train", validation_split=False) == [
        "--gradient_accumulation_steps 2 cannot be used with DeepSpeed: the trainer accumulates gradients itself; use "
        "1 (and a larger --train_batch_size or more GPUs)",
        "--zero_stage 3 is not supported (it splits the weights too, and sampling, EMA and saving read them whole); "
        "use --zero_stage 2, or FSDP (docs/multi-gpu.md)",
    ]
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert launch_problems(args, "sdxl_train", validation_split=False) == [
        "--deepspeed cannot be used in a launch that accelerate's config sets up for FSDP; use one of them"]
    with pytest.raises(OptionError, match="only fine_tune, sdxl_train, flux_train, sd3_train, train_db accept it. "
                       "DeepSpeed is used here for full fine-tuning only"):
        parse_args("train_network", ["--deepspeed"])


def test_one_process_gets_the_environment_deepspeed_sets_up_from() -> None:
    environ: dict[str, str] = {}
    single_process_environment(environ)
    assert {k: v for k, v in environ.items() if k != "MASTER_PORT"} == {
        "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    assert int(environ["MASTER_PORT"]) > 0
    launched = {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}  # accelerate launch --multi_gpu set them
    single_process_environment(launched)
    assert launched == {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}


def test_the_slice_reads_commands_without_the_flags() -> None:
    args = argparse.Namespace(mixed_precision="no", full_fp16=False, train_batch_size=1, gradient_accumulation_steps=1,
                              max_grad_norm=1.0)  # a LoRA command's namespace: no DeepSpeed options
    assert DeepSpeedConfig.from_args(args).deepspeed is False
