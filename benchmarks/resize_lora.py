"""Time resize_lora on a full-size SDXL-shaped rank-64 LoRA of random weights.

    python benchmarks/resize_lora.py [--device cpu|cuda] [--rank 64] [--new_rank 16] [--tiny]

The key set and shapes are those our LoRA trains on SDXL (U-Net attention layers by SGM names, both
text encoders), enumerated from the shipped config built on the meta device. --tiny caps every
dimension and the module count, so the tests can run the script quickly. One JSON object per line:
{"benchmark": "resize_lora", "method": ..., "seconds": ..., "modules": ..., "device": ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.families.network_targets import UNET_FAMILIES
from backend.models.keymap_unet import unet_module_to_original  # noqa: E402
from backend.networks.naming import text_encoder_targets, unet_targets  # noqa: E402
from backend.tools.lora.lora_files import LoraFile, lora_module  # noqa: E402
from backend.tools.lora.lora_layers import meta_models  # noqa: E402
from backend.tools.lora.lora_resize import ResizeOptions, resize_modules  # noqa: E402


def sdxl_lora(rank: int, tiny: bool) -> LoraFile:
    unet, text_encoders = meta_models("sdxl")
    targets = text_encoder_targets(text_encoders, UNET_FAMILIES) + unet_targets(
        unet, False, lambda path: unet_module_to_original(path, unet.config), UNET_FAMILIES
    )
    if tiny:
        targets = targets[::60]
    generator = torch.Generator().manual_seed(0)
    modules = {}
    for target in targets:
        out_dim, in_dim = target.module.weight.shape[0], target.module.weight[0].numel()
        if tiny:
            out_dim, in_dim = min(out_dim, 32), min(in_dim, 32)
        up = torch.randn(out_dim, rank, generator=generator) * 0.01
        down = torch.randn(rank, in_dim, generator=generator) * 0.01
        modules[target.lora_name] = lora_module(up, down, rank / 2)
    return LoraFile("benchmark", modules, {"ss_network_dim": str(rank)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--new_rank", type=int, default=16)
    parser.add_argument("--tiny", action="store_true", help="small shapes and few modules (smoke test)")
    args = parser.parse_args()
    lora = sdxl_lora(8 if args.tiny else args.rank, args.tiny)
    for method, param in ((None, None), ("sv_fro", 0.9)):
        options = ResizeOptions(args.new_rank, None, method, param, args.device)
        start = time.perf_counter()
        with torch.no_grad():
            _, reports = resize_modules(lora, options)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        print(json.dumps({"benchmark": "resize_lora", "method": method or f"rank {args.new_rank}",
                          "seconds": round(seconds, 3), "modules": len(reports), "device": args.device,
                          "rank": 8 if args.tiny else args.rank, "new_rank": args.new_rank}), flush=True)


if __name__ == "__main__":
    main()
