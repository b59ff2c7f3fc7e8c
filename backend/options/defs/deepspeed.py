"""sd-scripts' DeepSpeed flags (library/deepspeed_utils.py): --deepspeed builds accelerate's DeepSpeedPlugin from
them when the Accelerator is made (backend/training/deepspeed_plugin.py), instead of an accelerate config file.

The fine-tuning commands take them; the LoRA commands refuse them, as they refuse a DeepSpeed launch
(backend/training/sharded.py): a network is small enough for plain data parallelism. ZeRO stage 3 is refused
in preflight, so its own flags are taken and said to change nothing (docs/multi-gpu.md).
"""

from backend.messages import msg
from backend.options.schema import FINETUNE_COMMANDS, Option, declare_all

_LORA_REASON = msg(
    "options.other_commands.deepspeed", "DeepSpeed is used here for full fine-tuning only: a network's gradients "
    "and optimizer state are small, so LoRA training spreads over GPUs with plain data parallelism "
    "(accelerate launch --multi_gpu)",
)
_STAGE3 = "ZeRO stage 3 only, which this trainer refuses: no effect here."


def _deepspeed(name: str, kind: str, default: object, text: str, choices: tuple | None = None) -> Option:
    return Option(name, kind, default, group="advanced", commands=FINETUNE_COMMANDS, choices=choices, help=text,
                  other_commands_reason=_LORA_REASON)


declare_all(
    [
        _deepspeed(
            "deepspeed", "bool", False,
            "Train with DeepSpeed ZeRO (needs `pip install deepspeed`, not installed by setup), set up from the "
            "flags below rather than an accelerate config file: gradients and optimizer state are split across "
            "the GPUs. Launch with accelerate launch --multi_gpu --num_processes N (one process works too, e.g. "
            "with --offload_optimizer_device cpu). See docs/multi-gpu.md.",
        ),
        _deepspeed(
            "zero_stage", "int", 2,
            "The ZeRO stage with --deepspeed: 0 (plain data parallelism), 1 (optimizer state split), 2 (default: "
            "gradients too). 3 (weights too) is refused; use FSDP (docs/multi-gpu.md).",
            choices=(0, 1, 2, 3),
        ),
        _deepspeed(
            "offload_optimizer_device", "str", None,
            "cpu: keep the optimizer state in system RAM and step it on the CPU (ZeRO stage 2; needs "
            "--optimizer_type deepspeed.ops.adam.DeepSpeedCPUAdam or deepspeed.ops.lion.DeepSpeedCPULion). nvme: "
            "ZeRO stage 3 only. Default: on the GPU.",
            choices=(None, "cpu", "nvme"),
        ),
        _deepspeed("offload_optimizer_nvme_path", "path", None, f"Folder on an NVMe drive for the optimizer state. "
                   f"{_STAGE3}"),
        _deepspeed("offload_param_device", "str", None, f"cpu or nvme: where the weights wait. {_STAGE3}",
                   choices=(None, "cpu", "nvme")),
        _deepspeed("offload_param_nvme_path", "path", None, f"Folder on an NVMe drive for the weights. {_STAGE3}"),
        _deepspeed("zero3_init_flag", "bool", False, f"Build the model partitioned (deepspeed.zero.Init). {_STAGE3}"),
        _deepspeed("zero3_save_16bit_model", "bool", False, f"Gather the weights in 16 bits to save them. {_STAGE3}"),
        _deepspeed(
            "fp16_master_weights_and_gradients", "bool", False,
            "DeepSpeed keeps the master weights and gradients in fp16 (the optimizer state stays fp32). Needs "
            "--mixed_precision fp16; takes effect only with --offload_optimizer_device cpu and --zero_stage 2 (as "
            "in sd-scripts, where --full_fp16 does the same).",
        ),
    ]
)
