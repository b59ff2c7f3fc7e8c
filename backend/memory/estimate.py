"""A run's predicted peak GPU and host memory, as a breakdown, from the model's header and the run's options.

Torch-free: the GUI calls it on every "Memory" refresh and the trainer's preflight before any model loads.
Where the run trains decides where things live: `device="cuda"` plans a GPU run (the card holds the weights
the step needs, the network, gradients, optimizer states, activations; the host holds the process, the
loading copy, cached latents, parts moved off the GPU and pinned swapped blocks); `device="cpu"` plans a CPU
run, where all of it is host memory. The constants below were measured on CPU runs
(benchmarks/memory_planner.py, docs/performance.md "Memory planner"); GPU constants are stated as assumed.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from backend import families
from backend.families.declaration import FamilyDeclaration
from backend.memory import optimizers
from backend.memory.activations import activation_bytes, width_sum
from backend.memory.weights import DENOISER, VAE, Component, WeightsUnreadable, read_components
from backend.messages import msg

GIB = 1024**3
MIB = 1024**2
# Host RSS of a trainer process before any model is read (python, torch, diffusers, transformers imported):
# measured on CPU runs of the tiny models. A CUDA process maps the CUDA libraries too (assumed, not measured).
CPU_BASELINE = 510 * MIB
CUDA_HOST_BASELINE = 2 * GIB
# What a card needs beyond PyTorch's allocations (CUDA context, cuBLAS workspace, allocator rounding and
# fragmentation): added when comparing with a card's size, not part of the allocation estimate.
CUDA_CONTEXT = 768 * MIB
CARD_SLACK = 0.05
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".avif", ".jxl"})
_MAX_IMAGES_COUNTED = 200_000
# LoRA's default targets: the linear (and 1x1) layers of the attention blocks and text encoders' layers.
_LORA_DENOISER = re.compile(r"(transformer_blocks|double_blocks|single_blocks|joint_blocks|proj_in|proj_out)")
_LORA_TEXT = re.compile(r"(self_attn|mlp|\.attn\.|in_proj)")
_T5_KEY = "encoder.block."
_SWAP_BLOCKS = re.compile(
    r"^(?:model\.diffusion_model\.)?(double_blocks|single_blocks|joint_blocks)\.(\d+)\."
)

Kind = Literal["lora", "finetune", "dreambooth", "textual_inversion", "leco"]


class PlanError(ValueError):
    """The run cannot be planned (unknown command or family, unreadable model); the message says why."""


@dataclass(frozen=True)
class Line:
    key: str  # stable id: "weights.denoiser", "gradients", ...
    label: str  # in the language of the moment
    gpu: int = 0
    host: int = 0
    detail: str = ""
    transient: bool = False  # a host peak of its own phase (loading, saving), not held during training

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "gpu_bytes": self.gpu,
            "host_bytes": self.host,
            "detail": self.detail,
            "transient": self.transient,
        }


@dataclass(frozen=True)
class Estimate:
    command: str
    family: str
    device: str
    lines: tuple[Line, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def gpu_peak(self) -> int:
        return sum(line.gpu for line in self.lines)

    @property
    def host_peak(self) -> int:
        steady = sum(line.host for line in self.lines if not line.transient)
        phases = [line.host for line in self.lines if line.transient]
        baseline = next((line.host for line in self.lines if line.key == "host.process"), 0)
        return max([steady, *[baseline + extra for extra in phases]])

    def card_need(self) -> int:
        """What a card must have free for this run: the allocations plus the context and slack."""
        return int(self.gpu_peak * (1 + CARD_SLACK)) + CUDA_CONTEXT

    def as_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "family": self.family,
            "device": self.device,
            "gpu_peak_bytes": self.gpu_peak,
            "card_need_bytes": self.card_need() if self.device == "cuda" else 0,
            "host_peak_bytes": self.host_peak,
            "lines": [line.as_json() for line in self.lines],
            "notes": list(self.notes),
        }


def gib(value: int) -> str:
    return f"{value / GIB:.2f} GiB"


def training_kind(command: str) -> Kind:
    for declaration in families.for_command(command):
        for kind, name in declaration.commands.items():
            if name == command:
                return kind  # type: ignore[return-value]
    raise PlanError(
        msg(
            "memory.unknown_command",
            "{command}: the memory planner knows no such training command",
            command=command,
        )
    )


def plans(command: str) -> bool:
    """Whether the planner plans runs of this command (the image training commands; not video yet)."""
    try:
        training_kind(command)
    except PlanError:
        return False
    return not any(declaration.is_video for declaration in families.for_command(command))


def family_for(command: str, options: Mapping[str, Any]) -> FamilyDeclaration:
    found = families.for_command(command)
    if not found:
        raise PlanError(
            msg(
                "memory.unknown_command",
                "{command}: the memory planner knows no such training command",
                command=command,
            )
        )
    named = options.get("model_type")
    for declaration in found:
        if named and declaration.name == named:
            return declaration
    for declaration in found:
        if all(
            bool(options.get(k)) == bool(v) if isinstance(v, bool) else options.get(k) == v
            for k, v in declaration.implied_options.items()
        ):
            return declaration
    return found[0]


def _flag(options: Mapping[str, Any], name: str) -> bool:
    value = options.get(name)
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _int(options: Mapping[str, Any], name: str, default: int) -> int:
    try:
        return int(options.get(name) or default)
    except (TypeError, ValueError):
        return default


def pixels_per_sample(options: Mapping[str, Any], family: FamilyDeclaration) -> int:
    """The largest sample's pixels: `resolution` ("W,H" or "S"; buckets keep each image's area at most
    that), else the family's native resolution."""
    value = options.get("resolution")
    native = family.native_resolution(_flag(options, "v_parameterization"))
    if value in (None, ""):
        return native * native
    parts = [p for p in re.split(r"[,x ]+", str(value).strip()) if p]
    try:
        sides = [int(float(p)) for p in parts][:2]
    except ValueError:
        return native * native
    if not sides:
        return native * native
    return sides[0] * (sides[1] if len(sides) > 1 else sides[0])


def _lora_targets(component: Component, text: bool) -> list[tuple[int, int]]:
    """(in, out) of each layer a LoRA of default targets wraps in this component."""
    pattern = _LORA_TEXT if text else _LORA_DENOISER
    found = []
    for key, shape in component.shapes.items():
        if not key.endswith("weight") or not pattern.search(key) or (text and _T5_KEY in key):
            continue
        if len(shape) == 2 or (len(shape) == 4 and shape[2:] == (1, 1)):
            if key.endswith("in_proj_weight"):  # OpenCLIP's fused q, k, v: three layers
                found += [(shape[1], shape[0] // 3)] * 3
            else:
                found.append((shape[1], shape[0]))
    return found


def _network_shapes(parts: Mapping[str, Component], options: Mapping[str, Any]) -> list[tuple[int, ...]]:
    dim = _int(options, "network_dim", 4)
    unet_only = _flag(options, "network_train_unet_only") or _flag(options, "cache_text_encoder_outputs")
    text_only = _flag(options, "network_train_text_encoder_only")
    shapes: list[tuple[int, ...]] = []
    for name, component in parts.items():
        if name == VAE or (name == DENOISER and text_only) or (name != DENOISER and unet_only):
            continue
        for fan_in, fan_out in _lora_targets(component, text=name != DENOISER):
            shapes += [(dim, fan_in), (fan_out, dim)]
    return shapes


def _largest(shapes: list[tuple[int, ...]]) -> int:
    return max((math.prod(s) for s in shapes), default=0)


def _swapped_bytes(denoiser: Component, blocks_to_swap: int, dtype_bytes: int) -> int:
    """The weights of the blocks --blocks_to_swap keeps in host memory: with two block lists (FLUX.1's
    double and single blocks) N // 2 of the first and twice the rest of the second, else the last N."""
    if blocks_to_swap <= 0:
        return 0
    groups: dict[str, dict[int, int]] = {}
    for key, shape in denoiser.shapes.items():
        found = _SWAP_BLOCKS.match(key)
        if found:
            blocks = groups.setdefault(found.group(1), {})
            blocks[int(found.group(2))] = blocks.get(int(found.group(2)), 0) + math.prod(shape)
    if not groups:
        return 0
    names = list(groups)
    counts = {names[0]: blocks_to_swap}
    if len(names) == 2:
        counts = {names[0]: blocks_to_swap // 2, names[1]: (blocks_to_swap - blocks_to_swap // 2) * 2}
    total = 0
    for name, count in counts.items():
        blocks = groups[name]
        count = min(count, max(len(blocks) - 2, 0))  # each group keeps two blocks on the GPU
        total += sum(blocks[i] for i in sorted(blocks)[len(blocks) - count :]) if count else 0
    return total * dtype_bytes


def _count_images(folder: object) -> int:
    if not folder:
        return 0
    root = Path(str(folder))
    if not root.is_dir():
        return 0
    count = 0
    for _, _, names in os.walk(root):
        count += sum(1 for name in names if Path(name).suffix.lower() in IMAGE_SUFFIXES)
        if count > _MAX_IMAGES_COUNTED:
            break
    return count


def _latent_channels(vae: Component | None) -> int:
    if vae is not None:
        for key, shape in vae.shapes.items():
            if key.endswith("decoder.conv_in.weight") and len(shape) == 4:
                return shape[1]
    return 4


def estimate(command: str, options: Mapping[str, Any], device: Literal["cuda", "cpu"] = "cuda") -> Estimate:
    """The breakdown of one run. Raises PlanError (or WeightsUnreadable) with a message when it cannot plan."""
    kind = training_kind(command)
    family = family_for(command, options)
    if family.is_video:
        raise PlanError(
            msg("memory.video", "{command}: the memory planner does not plan video runs yet", command=command)
        )
    model = options.get("pretrained_model_name_or_path")
    if not model:
        raise PlanError(
            msg(
                "memory.no_model",
                "no base model is set (pretrained_model_name_or_path): the memory "
                "planner reads the model's header",
            )
        )
    parts = read_components(str(model), family, options)
    return _plan(command, kind, family, parts, options, device)


def _plan(
    command: str,
    kind: Kind,
    family: FamilyDeclaration,
    parts: Mapping[str, Component],
    options: Mapping[str, Any],
    device: str,
) -> Estimate:
    precision = str(options.get("mixed_precision") or "no")
    compute = 2 if precision in ("fp16", "bf16") else 4
    full_half = _flag(options, "full_fp16") or _flag(options, "full_bf16")
    trained_bytes = 2 if full_half else 4
    batch = max(_int(options, "train_batch_size", 1), 1)
    checkpointing = _flag(options, "gradient_checkpointing") or _flag(options, "cpu_offload_checkpointing")
    fp8 = _flag(options, "fp8_base") or _flag(options, "fp8_base_unet")
    fp8_text = _flag(options, "fp8_base") and not _flag(options, "fp8_base_unet")
    cache_latents = _flag(options, "cache_latents") or _flag(options, "cache_latents_to_disk")
    cache_text = _flag(options, "cache_text_encoder_outputs")
    full_model = kind in ("finetune", "dreambooth")
    train_text = full_model and _flag(options, "train_text_encoder")
    on_gpu = device == "cuda"
    notes: list[str] = []

    def weight_bytes(component: Component, trained: bool, float8: bool) -> int:
        if trained:
            return component.params * trained_bytes
        if not float8:
            return component.params * compute
        big = sum(math.prod(s) for s in component.shapes.values() if len(s) >= 2)
        return big + (component.params - big) * compute

    lines: list[Line] = []
    baseline = CUDA_HOST_BASELINE if on_gpu else CPU_BASELINE
    lines.append(
        Line("host.process", msg("memory.line.process", "Trainer process (Python, PyTorch)"), host=baseline)
    )

    trained_shapes: list[tuple[int, ...]] = []
    all_weights = 0
    for name, component in parts.items():
        is_denoiser = name == DENOISER
        trained = full_model and (is_denoiser or (train_text and name != VAE))
        float8 = fp8 and not trained and (is_denoiser or (fp8_text and name != VAE))
        size = weight_bytes(component, trained, float8)
        all_weights += size
        if trained:
            trained_shapes += list(component.shapes.values())
        off_gpu = (name == VAE and cache_latents) or (
            name not in (DENOISER, VAE) and cache_text and not trained
        )
        swapped = 0
        if is_denoiser and on_gpu:
            swapped = _swapped_bytes(component, _int(options, "blocks_to_swap", 0), 1 if float8 else compute)
        dtype = "float8" if float8 else f"{8 * (trained_bytes if trained else compute)}-bit"
        detail = msg(
            "memory.detail.params",
            "{count} M parameters, {dtype}",
            count=f"{component.params / 1e6:,.1f}",
            dtype=dtype,
        )
        label = {
            DENOISER: msg("memory.line.denoiser", "Denoiser weights"),
            VAE: msg("memory.line.vae", "VAE weights"),
        }.get(
            name,
            msg("memory.line.text_encoder", "Text encoder {index} weights", index=name.rsplit("_", 1)[-1]),
        )
        if not on_gpu:
            lines.append(Line(f"weights.{name}", label, host=size, detail=detail))
            continue
        if off_gpu:
            detail += " · " + msg("memory.detail.moved_off", "moved to host memory after caching")
        lines.append(
            Line(
                f"weights.{name}",
                label,
                gpu=0 if off_gpu else size - swapped,
                host=size if off_gpu else swapped,
                detail=detail,
            )
        )
        if swapped:
            notes.append(
                msg(
                    "memory.note.swap",
                    "--blocks_to_swap keeps {size} of the denoiser in pinned host memory",
                    size=gib(swapped),
                )
            )

    if not full_model:
        trained_shapes = _network_shapes(parts, options) if kind in ("lora", "leco") else []
    trained_params = sum(math.prod(s) for s in trained_shapes)
    where = "gpu" if on_gpu else "host"

    def place(key: str, label: str, size: int, detail: str = "") -> None:
        lines.append(Line(key, label, **{where: size}, detail=detail))

    if not full_model:
        place(
            "network",
            msg("memory.line.network", "Network (trained parameters)"),
            trained_params * trained_bytes,
            msg("memory.detail.count", "{count} M parameters", count=f"{trained_params / 1e6:,.2f}"),
        )
    fused = _flag(options, "fused_backward_pass") and full_model
    gradients = (_largest(trained_shapes) if fused else trained_params) * trained_bytes
    place(
        "gradients",
        msg("memory.line.gradients", "Gradients"),
        gradients,
        msg("memory.detail.fused", "fused backward pass: one tensor at a time") if fused else "",
    )
    name = optimizers.optimizer_name(options.get("optimizer_type"), options.get("use_8bit_adam"))
    if not optimizers.known(name):
        notes.append(
            msg(
                "memory.note.optimizer",
                "optimizer {name}: its state is counted as AdamW's (two float32 values per parameter)",
                name=options.get("optimizer_type"),
            )
        )
    state = optimizers.state_bytes(name, trained_shapes)
    place(
        "optimizer",
        msg("memory.line.optimizer", "Optimizer states"),
        state,
        str(options.get("optimizer_type") or "AdamW"),
    )

    pixels = pixels_per_sample(options, family)
    act_dtype = compute if not full_half else 2
    widths = width_sum(parts[DENOISER].shapes.values())
    activations, source = activation_bytes(family.name, pixels, batch, checkpointing, act_dtype, widths)
    if not source:
        notes.append(
            msg(
                "memory.note.no_activations",
                "no activation measurement for {family} yet: activations are "
                "left out, so the peak is too low",
                family=family.label,
            )
        )
    side = int(math.sqrt(pixels))
    place(
        "activations",
        msg("memory.line.activations", "Activations"),
        activations,
        msg(
            "memory.detail.activations",
            "batch {batch} × {side}² px, {checkpointing}; measured: {source}",
            batch=batch,
            side=side,
            checkpointing=msg("memory.detail.checkpointing_on", "gradient checkpointing")
            if checkpointing
            else msg("memory.detail.checkpointing_off", "no gradient checkpointing"),
            source=source or "-",
        ),
    )
    # Temporary buffers: the VAE encoding a batch when latents are not cached, and float8 weights upcast
    # one layer at a time; a small share of the rest for allocator rounding.
    workspace = int(0.03 * (activations + all_weights))
    if not cache_latents:
        workspace += int(batch * pixels * 128 * compute * 2)  # the VAE encoder's widest feature maps
    place("workspace", msg("memory.line.workspace", "Workspace (VAE encoding, temporary buffers)"), workspace)

    in_memory = cache_latents and not _flag(options, "cache_latents_to_disk")
    images = _count_images(options.get("train_data_dir")) if in_memory else 0
    if images:  # each image's latent, float32, kept in host memory for the whole run
        latent = images * _latent_channels(parts.get(VAE)) * (pixels // 64) * 4
        lines.append(
            Line(
                "host.latents",
                msg("memory.line.latents", "Cached latents"),
                host=latent,
                detail=msg("memory.detail.images", "{count} images", count=images),
            )
        )
    loading_extra = all_weights if on_gpu and not _flag(options, "lowram") else 0
    if on_gpu:
        lines.append(
            Line(
                "host.loading",
                msg("memory.line.loading", "Model loading (before moving to the GPU)"),
                host=loading_extra,
                transient=True,
            )
        )
    if full_model:
        saved = sum(c.params for c in parts.values()) * _save_bytes(options, trained_bytes)
        lines.append(
            Line(
                "host.saving",
                msg("memory.line.saving", "Saving the model (a copy in the file's dtype)"),
                # on the CPU the weights and optimizer states stay in memory beside the copy (gradients are freed)
                host=saved + (0 if on_gpu else all_weights + state),
                transient=True,
            )
        )
    return Estimate(command, family.name, device, tuple(lines), tuple(notes))


def _save_bytes(options: Mapping[str, Any], default: int) -> int:
    value = str(options.get("save_precision") or "")
    return {"float": 4, "fp16": 2, "bf16": 2}.get(value, default)


__all__ = ["GIB", "Estimate", "Line", "PlanError", "WeightsUnreadable", "estimate", "family_for", "gib"]
