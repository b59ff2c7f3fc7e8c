"""Seconds per optimizer step and peak memory of a video family's transformer training (LoRA or full).

    python benchmarks/video_step.py --family ltx_video|wan|hunyuan_video|cogvideox [--arch NAME]
        [--size full|tiny] [--method lora|full] [--frames 49] [--height 512] [--width 768] [--rank 128]
        [--batch-size 1] [--gradient-checkpointing] [--fp8-base] [--steps 8] [--warmup 3]
        [--device auto|cpu|cuda]

finetrainers' memory figures (its README: 49x512x768, rank 128, conditions precomputed) are the anchors:
LTX-Video LoRA 5 GB / full 21 GB, CogVideoX-5b LoRA 18 GB / full 53 GB, HunyuanVideo LoRA 32 GB. With
precomputed conditions (`--enable_precomputation`) the text encoders and the VAE are off the device while
training, so what those figures measure is the transformer's training. This benchmark builds that
transformer from the family's shipped config (`--size full`; `tiny`: the test models' config, for a CPU dry
run) with random weights directly on the device (nothing written to disk: HunyuanVideo alone is 26 GB in
bf16) and trains it as train_video does, with the trainer's own parts: the family's `predict`, the video
LoRA network (backend/video/network.py, finetrainers' default targets), fp8 storage of the frozen weights
(`--fp8-base` = `--layerwise_upcasting_modules transformer`), diffusers' gradient checkpointing, bf16
autocast, AdamW; a full fine-tune in bf16 weights (train_video's --transformer_dtype bf16). Inputs are random
latents and text conditions of the shapes the family's VAE and encoders give for `--frames x --height x
--width` and its prompt length. Not measured: data loading and the VAE / text encoders (precomputed).

One JSON line: {"benchmark": "video_step", "family": ..., "median_s": ..., "peak_gib": ..., ...}; peak_gib is
`torch.cuda.max_memory_allocated` from the model build to the end on CUDA (the process's peak RSS on the CPU).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lib.output import emit, machine, median, percentile  # noqa: E402

# The family's default full-size architecture (a config set under backend/families/<family>/configs).
DEFAULT_ARCH = {"ltx_video": "ltx-video", "wan": "wan2.1-t2v-1.3b", "hunyuan_video": "hunyuan-video",
                "cogvideox": "cogvideox-5b"}
# finetrainers' README figures (GiB) at 49x512x768, rank 128, precomputed conditions: what a run compares to.
ANCHORS_GIB = {("ltx_video", "lora"): 5, ("ltx_video", "full"): 21, ("cogvideox", "lora"): 18,
               ("cogvideox", "full"): 53, ("hunyuan_video", "lora"): 32}


def arch_configs(family: str, arch: str, size: str) -> Any:
    import importlib

    from backend.models.configs import load_arch_configs

    real = load_arch_configs(arch)
    if size == "full":
        return real
    tiny = importlib.import_module(f"devtools.tiny_{family}")
    tokens = [{"vocab_size": 256, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}] * len(real.text_encoders)
    return tiny.tiny_configs(real, tokens)


def build_transformer(family: str, configs: Any, device: Any, dtype: Any) -> Any:
    """The transformer with random weights, made on `device` (no CPU copy of a 13B model)."""
    import torch

    with torch.device(device):
        transformer = _transformer_class(family).from_config(configs.unet)
    return transformer.to(dtype).eval().requires_grad_(False)


def _transformer_class(family: str) -> Any:
    from diffusers import (
        CogVideoXTransformer3DModel,
        HunyuanVideoTransformer3DModel,
        LTXVideoTransformer3DModel,
        WanTransformer3DModel,
    )

    classes = {"ltx_video": LTXVideoTransformer3DModel, "wan": WanTransformer3DModel,
               "hunyuan_video": HunyuanVideoTransformer3DModel, "cogvideox": CogVideoXTransformer3DModel}
    return classes[family]


def condition_shapes(family: str, transformer_config: Any, spec: Any) -> dict[str, Any]:
    """The text conditions' shapes the family's encoders give: (tokens, width), the pooled width, a mask."""
    tokens = spec.max_sequence_length
    if family == "ltx_video":
        return {"hidden": (tokens, transformer_config["caption_channels"]), "pooled": None, "mask": True}
    if family == "wan":
        return {"hidden": (tokens, transformer_config["text_dim"]), "pooled": None, "mask": False}
    if family == "hunyuan_video":
        return {"hidden": (tokens, transformer_config["text_embed_dim"]),
                "pooled": transformer_config["pooled_projection_dim"], "mask": True}
    return {"hidden": (tokens, transformer_config["text_embed_dim"]), "pooled": None, "mask": False}


def latent_shape(declaration: Any, configs: Any, frames: int, height: int, width: int) -> tuple[int, ...]:
    channels = configs.vae.get("latent_channels") or configs.vae.get("z_dim")
    temporal, spatial = declaration.temporal_compression, declaration.spatial_compression
    return (int(channels), 1 + (frames - 1) // temporal, height // spatial, width // spatial)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from backend.families import DECLARATIONS
    from backend.families.loaded import family
    from backend.models.components import PromptEmbeds
    from backend.options.defs.video import LAYERWISE_SKIP_DEFAULT
    from backend.training.fp8_weights import store_weights_in_fp8
    from backend.video.network import FINETRAINERS_DEFAULT, PeftLoraNetwork, target_layers

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    declaration = next(d for d in DECLARATIONS if d.video_model_name == args.family)
    configs = arch_configs(args.family, args.arch or DEFAULT_ARCH[args.family], args.size)
    spec = family(declaration.name).spec
    compute = torch.bfloat16
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    lora = args.method == "lora"
    transformer = build_transformer(args.family, configs, device, compute)
    if args.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    if lora:
        if args.fp8_base:  # before the LoRA hooks in, as the trainer does: the LoRA wraps the fp8 forward
            store_weights_in_fp8(transformer, compute, LAYERWISE_SKIP_DEFAULT)
        network = PeftLoraNetwork(target_layers(transformer, [FINETRAINERS_DEFAULT]), args.rank, float(args.rank))
        network.apply_to(None, transformer, apply_text_encoder=False, apply_unet=True)
        network.to(device).requires_grad_(True)  # float32 LoRA weights, as the trainer keeps them
        params = [p for p in network.parameters() if p.requires_grad]
        transformer.train()
    else:
        transformer.requires_grad_(True).train()
        params = list(transformer.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")
    build_s = time.perf_counter() - started

    shapes = condition_shapes(args.family, configs.unet, spec)
    batch = args.batch_size
    latents_shape = (batch, *latent_shape(declaration, configs, args.frames, args.height, args.width))
    generator = torch.Generator(device).manual_seed(0)

    def step() -> float:
        latents = torch.randn(latents_shape, device=device, dtype=compute, generator=generator)
        noise = torch.randn(latents_shape, device=device, dtype=compute, generator=generator)
        sigma = torch.rand(batch, device=device, generator=generator)
        hidden = torch.randn((batch, *shapes["hidden"]), device=device, dtype=compute, generator=generator)
        pooled = (torch.randn((batch, shapes["pooled"]), device=device, dtype=compute, generator=generator)
                  if shapes["pooled"] else None)
        mask = torch.ones((batch, shapes["hidden"][0]), device=device, dtype=torch.bool) if shapes["mask"] else None
        s = sigma.view(-1, 1, 1, 1, 1).to(compute)
        noisy = (1 - s) * latents + s * noise
        begin = time.perf_counter()
        with torch.autocast(device.type, dtype=compute):
            out = spec.predict(transformer, noisy, sigma * 1000, PromptEmbeds(hidden, pooled, mask))
            loss = torch.nn.functional.mse_loss(out.float(), (noise - latents).float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - begin

    times = [step() for _ in range(args.warmup + args.steps)][args.warmup:]
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        name = torch.cuda.get_device_name()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        name = "cpu"
    parameters = sum(p.numel() for p in transformer.parameters())
    anchor = ANCHORS_GIB.get((args.family, args.method)) if args.size == "full" else None
    return {
        "family": args.family, "arch": args.arch or DEFAULT_ARCH[args.family], "size": args.size,
        "method": args.method, "frames": args.frames, "height": args.height, "width": args.width,
        "rank": args.rank if lora else None, "batch_size": batch, "gradient_checkpointing": args.gradient_checkpointing,
        "fp8_base": args.fp8_base, "device": name, "transformer_params_m": round(parameters / 1e6, 3),
        "trained_params_m": round(sum(p.numel() for p in params) / 1e6, 3), "latents": list(latents_shape),
        "build_s": round(build_s, 2), "median_s": round(median(times), 4), "p90_s": round(percentile(times, 0.9), 4),
        "peak_gib": round(peak, 2), "finetrainers_gib": anchor,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", required=True, choices=sorted(DEFAULT_ARCH))
    parser.add_argument("--arch", default=None, help="a config set of the family (default: its usual one)")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--method", choices=("lora", "full"), default="lora")
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--rank", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--fp8-base", action="store_true")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.fp8_base and args.method != "lora":
        parser.error("--fp8-base stores frozen weights: LoRA only (train_video refuses it for full fine-tunes too)")
    emit("video_step", **measure(args), **machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
