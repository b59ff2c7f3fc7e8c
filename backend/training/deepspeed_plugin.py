"""--deepspeed and its flags: accelerate's DeepSpeedPlugin built as sd-scripts' library/deepspeed_utils.py builds it.

The plugin goes to the Accelerator (run_setup.make_accelerator); from there the run is a DeepSpeed run like one
launched with an accelerate DeepSpeed config (sharded.py prepares the trained modules with the optimizer). The
checks here run in preflight: the package, and the settings DeepSpeed would refuse or ignore deep inside the run.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from dataclasses import dataclass
from typing import Any

from backend.messages import msg
from backend.training.option_slice import OptionSlice

# Optimizers DeepSpeed steps on the CPU; with any other, an offloaded optimizer state is refused
# (deepspeed's engine raises ZeRORuntimeException: "You are using ZeRO-Offload with a client provided optimizer").
CPU_OPTIMIZERS = ("deepspeed.ops.adam.DeepSpeedCPUAdam", "deepspeed.ops.lion.DeepSpeedCPULion")
STAGE3_FLAGS = ("offload_optimizer_nvme_path", "offload_param_device", "offload_param_nvme_path", "zero3_init_flag",
                "zero3_save_16bit_model")


@dataclass(frozen=True)
class DeepSpeedConfig(OptionSlice):
    """The DeepSpeed flags (fine-tuning commands only; the others run without them) and what the plugin copies."""

    mixed_precision: str
    full_fp16: bool
    train_batch_size: int
    gradient_accumulation_steps: int
    max_grad_norm: float
    deepspeed: bool = False
    zero_stage: int = 2
    offload_optimizer_device: str | None = None
    offload_optimizer_nvme_path: str | None = None
    offload_param_device: str | None = None
    offload_param_nvme_path: str | None = None
    zero3_init_flag: bool = False
    zero3_save_16bit_model: bool = False
    fp16_master_weights_and_gradients: bool = False

    @property
    def fp16_master(self) -> bool:
        """sd-scripts turns DeepSpeed's fp16 master weights on for either flag, in this one setting only."""
        wanted = self.full_fp16 or self.fp16_master_weights_and_gradients
        return wanted and self.offload_optimizer_device == "cpu" and self.zero_stage == 2


def make_plugin(config: DeepSpeedConfig, processes: int) -> Any:
    """accelerate's DeepSpeedPlugin for --deepspeed (None without it), with sd-scripts' settings."""
    if not config.deepspeed:
        return None
    from accelerate import DeepSpeedPlugin

    plugin = DeepSpeedPlugin(
        zero_stage=config.zero_stage,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        gradient_clipping=config.max_grad_norm,
        offload_optimizer_device=config.offload_optimizer_device,
        offload_optimizer_nvme_path=config.offload_optimizer_nvme_path,
        offload_param_device=config.offload_param_device,
        offload_param_nvme_path=config.offload_param_nvme_path,
        zero3_init_flag=config.zero3_init_flag,
        zero3_save_16bit_model=config.zero3_save_16bit_model,
    )
    settings = plugin.deepspeed_config
    # No dataloader goes through accelerate (the dataset splits the batches), so DeepSpeed cannot infer these.
    settings["train_micro_batch_size_per_gpu"] = config.train_batch_size
    settings["train_batch_size"] = config.train_batch_size * config.gradient_accumulation_steps * processes
    plugin.set_mixed_precision(config.mixed_precision)
    if config.mixed_precision == "fp16":
        settings["fp16"]["initial_scale_power"] = 0  # sd-scripts: a loss scale of 2**0 to start, against overflow
    if config.fp16_master:
        settings["fp16"]["fp16_master_weights_and_grads"] = True
    return plugin


def single_process_environment(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """DeepSpeed sets up its process group from RANK, LOCAL_RANK, WORLD_SIZE and MASTER_ADDR/PORT, which a
    one-process launch (python -m, or accelerate launch without --multi_gpu) does not set; without them it looks
    for MPI and fails. A run of one process gets them here, so ZeRO-Offload works on one GPU."""
    if "LOCAL_RANK" in environ or int(environ.get("WORLD_SIZE", "1")) != 1:
        return
    with socket.socket() as probe:  # a free port for the (one-member) process group
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", str(port))):
        environ.setdefault(name, value)


def deepspeed_problems(config: DeepSpeedConfig, optimizer: str | None) -> tuple[list[str], list[str]]:
    """(errors, warnings) for --deepspeed and its flags, before anything is loaded. `optimizer`: the resolved
    --optimizer_type (None when it could not be resolved; reported elsewhere)."""
    errors: list[str] = []
    warnings: list[str] = []
    if not config.deepspeed:
        changed = [f"--{name}" for name in ("offload_optimizer_device", "fp16_master_weights_and_gradients",
                                            *STAGE3_FLAGS) if getattr(config, name)]
        changed += ["--zero_stage"] if config.zero_stage != 2 else []
        if changed:
            warnings.append(msg("preflight.deepspeed.unused", "{flags}: no effect without --deepspeed",
                                flags=", ".join(changed)))
        return errors, warnings
    if importlib.util.find_spec("deepspeed") is None:
        errors.append(msg(
            "preflight.deepspeed.missing", "--deepspeed: the deepspeed package is not installed; setup does not "
            "install it. Install it into this project's venv: DS_BUILD_OPS=0 venv/bin/pip install deepspeed (it "
            "needs a C++ compiler; meant for CUDA GPUs). See docs/multi-gpu.md",
        ))
    device = config.offload_optimizer_device
    if device == "nvme":
        errors.append(msg("preflight.deepspeed.nvme_optimizer", "--offload_optimizer_device nvme: DeepSpeed offloads "
                          "the optimizer state to NVMe with ZeRO stage 3 only, which this trainer refuses; use cpu"))
    elif device == "cpu" and optimizer is not None and optimizer not in CPU_OPTIMIZERS:
        errors.append(msg(
            "preflight.deepspeed.cpu_optimizer", "--offload_optimizer_device cpu: DeepSpeed steps an offloaded "
            "optimizer state only with its own CPU optimizers, not {optimizer}; use --optimizer_type {choices}",
            optimizer=optimizer, choices=" or ".join(CPU_OPTIMIZERS),
        ))
    if device is not None and config.zero_stage < 1:
        warnings.append(msg("preflight.deepspeed.offload_stage", "--offload_optimizer_device {device}: no effect "
                            "with --zero_stage 0 (the optimizer state is offloaded from stage 1 on)", device=device))
    stage3 = [f"--{name}" for name in STAGE3_FLAGS if getattr(config, name)]
    if stage3:
        warnings.append(msg("preflight.deepspeed.stage3_flags", "{flags}: options of ZeRO stage 3, which this "
                            "trainer refuses; no effect", flags=", ".join(stage3)))
    if config.fp16_master_weights_and_gradients and config.mixed_precision != "fp16":
        # (sd-scripts fails on it: DeepSpeed's fp16 settings exist only under fp16)
        errors.append(msg("preflight.deepspeed.fp16_master_precision", "--fp16_master_weights_and_gradients needs "
                          "--mixed_precision fp16"))
    elif (config.fp16_master_weights_and_gradients or config.full_fp16) and not config.fp16_master:
        # sd-scripts logs the same and trains with fp32 master weights.
        flag = "--fp16_master_weights_and_gradients" if config.fp16_master_weights_and_gradients else "--full_fp16"
        warnings.append(msg(
            "preflight.deepspeed.fp16_master_unused", "{flag} with --deepspeed: DeepSpeed keeps fp16 master weights "
            "and gradients only with --offload_optimizer_device cpu and --zero_stage 2; the master weights stay "
            "fp32", flag=flag,
        ))
    return errors, warnings
