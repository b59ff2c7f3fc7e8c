"""Measure the denoiser's activation memory for the planner's table (backend/memory/activations.py).

    python benchmarks/memory_activations.py [--arch sd15] [--resolutions 64,128,256] [--dtype fp32|bf16]

Builds the full-size denoiser of `--arch` from the shipped configs with random weights (nothing downloaded),
puts a LoRA (rank 8, our networks.lora, frozen base: what a LoRA run saves for backward) on it, and for each
resolution, with and without gradient checkpointing, runs one training forward+backward at batch 1 with
SDPA attention. On the CPU the activation memory is the process's RSS high-water mark (VmHWM, reset before
each case through /proc/self/clear_refs; Linux) minus its RSS before the step, so it is what a real CPU run
adds on top of the loaded model (allocator slack included). On CUDA: torch.cuda.max_memory_allocated minus the allocation
before the step. One JSON line per case: bytes per sample, for the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lib.output import machine  # noqa: E402


def build(arch: str, dtype: str, device: str):
    import torch
    from diffusers import UNet2DConditionModel

    from backend.models.configs import load_arch_configs
    from backend.networks.lora import create_network

    configs = load_arch_configs(arch)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)
    try:
        with torch.device(device):
            unet = UNet2DConditionModel.from_config(configs.unet)
    finally:
        torch.set_default_dtype(previous)
    unet.requires_grad_(False)
    network = create_network(1.0, 8, 8.0, None, None, unet)
    network.apply_to(None, unet, apply_text_encoder=False, apply_unet=True)
    network.to(device)
    return configs, unet


def step(configs, unet, resolution: int, checkpointing: bool, device: str, dtype: str) -> None:
    import torch

    if checkpointing:
        unet.enable_gradient_checkpointing()
    else:
        unet.disable_gradient_checkpointing()
    unet.train()
    latent = resolution // 8
    cfg = configs.unet
    channels = cfg.get("in_channels", 4)
    width = cfg.get("cross_attention_dim", 768)
    width = width[0] if isinstance(width, list) else width
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    x = torch.randn(1, channels, latent, latent, device=device, dtype=torch_dtype)
    text = torch.randn(1, 77, width, device=device, dtype=torch_dtype)
    kwargs = {}
    if cfg.get("addition_embed_type") == "text_time":  # SDXL: pooled text and size ids
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(
                1,
                cfg.get("projection_class_embeddings_input_dim", 2816) - 6 * 256,
                device=device,
                dtype=torch_dtype,
            ),
            "time_ids": torch.zeros(1, 6, device=device, dtype=torch_dtype),
        }
    out = unet(x, torch.tensor([500], device=device), text, **kwargs).sample
    out.float().pow(2).mean().backward()


def _status_bytes(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_cpu(configs, unet, resolution: int, checkpointing: bool, dtype: str) -> int:
    """The RSS high-water mark (VmHWM, reset through /proc/self/clear_refs) minus the RSS before the step;
    freed heap memory handed back first (malloc_trim), as the trainer does after loading."""
    from backend.training.host_memory import return_freed_memory_to_os

    for p in unet.parameters():
        p.grad = None
    return_freed_memory_to_os()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")
    before = _status_bytes("VmRSS")
    step(configs, unet, resolution, checkpointing, "cpu", dtype)
    return _status_bytes("VmHWM") - before


def measure_cuda(configs, unet, resolution: int, checkpointing: bool, dtype: str) -> int:
    import torch

    torch.cuda.synchronize()
    for p in unet.parameters():
        p.grad = None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype != "fp32"):
        step(configs, unet, resolution, checkpointing, "cuda", dtype)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="sd15")
    parser.add_argument("--resolutions", default="64,128,256")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    import torch

    torch.manual_seed(0)
    configs, unet = build(args.arch, args.dtype, args.device)
    measure = measure_cpu if args.device == "cpu" else measure_cuda
    for resolution in (int(r) for r in args.resolutions.split(",")):
        for checkpointing in (False, True):
            used = measure(configs, unet, resolution, checkpointing, args.dtype)
            print(
                json.dumps(
                    {
                        "benchmark": "memory_activations",
                        "arch": args.arch,
                        "device": args.device,
                        "dtype": args.dtype,
                        "resolution": resolution,
                        "checkpointing": checkpointing,
                        "bytes_per_sample": used,
                        **machine(),
                    }
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
