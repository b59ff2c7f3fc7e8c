"""What `train_video` checks before any model is loaded, every problem listed at once.

- `--model_name`: a video family of this trainer (finetrainers' other names are refused with the list);
- the model: a local diffusers folder of that family (a folder of another family is named as such); a hub
  id is refused offline with what to do (the Hub is asked once, briefly: backend/hub.py);
- the data: finetrainers' layouts (backend/data/video/sources.py), the buckets against the family's VAE
  (frame counts 1 + k x temporal compression, sizes multiples of the spatial step), and every clip probed
  once: undecodable files and clips shorter than every bucket are listed with what to do;
- the parallel degrees this trainer runs (data parallel over the launched processes), the resume
  checkpoint (`--resume_from_checkpoint`), and the hub upload flags.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend import families
from backend.data.video.buckets import (
    Buckets,
    check_buckets,
    default_video_buckets,
    frame_indices,
    parse_buckets,
)
from backend.data.video.errors import VideoDataError, format_problems
from backend.data.video.sources import load_records
from backend.families.declaration import FamilyDeclaration
from backend.hub import hub_unreachable_reason
from backend.messages import msg
from backend.models.detect import detect_model
from backend.models.errors import ModelMismatchError
from backend.training.preflight import RunPlan, world_size
from backend.video.model_view import ComponentError, model_view
from backend.video.outputs import CheckpointNotFound, resume_folder
from backend.video.sources import DataSource, sources_from_args
from backend.video.translate import PRECISIONS, video_family
from backend.video.validation import unused_columns, validation_prompts

PARALLEL_DEGREES = ("dp_shards", "cp_degree", "tp_degree", "pp_degree")


@dataclass
class VideoPlan(RunPlan):
    declaration: FamilyDeclaration | None = None
    resume: str | None = None  # the state folder --resume_from_checkpoint names
    scanned: list[Any] = field(default_factory=list)  # backend.data.video.dataset.ScannedClip
    reshape_modes: list[str] = field(default_factory=list)  # per clip: its dataset's
    prompts: list[Any] = field(default_factory=list)  # the validation videos (SamplePrompt)

    def clip_source(self) -> ScannedClips:
        return ScannedClips(self.scanned, self.reshape_modes)

    def largest_bucket(self) -> tuple[int, int, int]:
        """(frames, height, width) of the largest bucket in use."""
        return max((c.bucket for c in self.scanned), key=lambda b: (b[1] * b[2], b[0]))

    def largest_resolution(self) -> tuple[int, int]:
        """(width, height) of the largest bucket in use."""
        _, height, width = self.largest_bucket()
        return width, height


class ScannedClips:
    """The scanned clips as the video datasets read them (video/dataset.py's ClipSource)."""

    def __init__(self, scanned: list[Any], reshape_modes: list[str]) -> None:
        self.scanned = scanned
        self.reshape_modes = reshape_modes

    def __len__(self) -> int:
        return len(self.scanned)

    def bucket(self, index: int) -> tuple[int, int, int]:
        return self.scanned[index].bucket

    def path(self, index: int) -> str:
        return str(self.scanned[index].record.path)

    def caption(self, index: int) -> str:
        return self.scanned[index].record.caption

    def reshape_mode(self, index: int) -> str:
        return self.reshape_modes[index]

    def video(self, index: int, rng: random.Random) -> Any:
        from backend.data.video.dataset import reshape
        from backend.data.video.decode import read_clip

        clip = self.scanned[index]
        frames, height, width = clip.bucket
        uint8 = read_clip(clip.record.path, frame_indices(clip.info.frames, frames, "spread"))
        return reshape(uint8, (height, width), self.reshape_modes[index], rng).permute(1, 0, 2, 3).contiguous()


def build_video_plan(args: argparse.Namespace) -> VideoPlan:
    plan = VideoPlan(command=families.VIDEO_COMMAND)
    plan.declaration = _check_family(args, plan)
    if plan.declaration is not None:
        _check_model(args, plan, plan.declaration)
        _check_data(args, plan, plan.declaration)
    if plan.scanned:
        try:
            declaration = plan.declaration
            assert declaration is not None  # clips were scanned against its buckets
            plan.prompts = validation_prompts(args, plan.largest_bucket(), declaration.image_to_video,
                                              declaration.label)
            unused = unused_columns(args)
            if unused:
                plan.warnings.append(msg(
                    "video.preflight.unused_columns", "--validation_dataset_file: the columns {columns} are not used "
                    "(validation videos start from the caption, and from image_path where the model can)",
                    columns=", ".join(unused)))
        except VideoDataError as exc:
            plan.errors.append(str(exc))
    _check_parallel(args, plan)
    _check_resume(args, plan)
    _check_hub(args, plan)
    _check_method(args, plan)
    plan.warnings += unused_settings(args)
    plan.report.update(
        command=plan.command, ok=plan.ok, errors=plan.errors, warnings=plan.warnings,
        model_name=args.model_name, training_type=args.training_type, clips=len(plan.scanned),
        buckets=_bucket_counts(plan), resume=plan.resume,
    )
    return plan


def check_video_data(args: argparse.Namespace) -> VideoPlan:
    """The data part of the preflight alone (the family's buckets, every clip probed), without a model: the
    Dataset page's video check (backend/tools/dataset/verify_video_dataset.py)."""
    plan = VideoPlan(command=families.VIDEO_COMMAND)
    plan.declaration = _check_family(args, plan)
    if plan.declaration is not None:
        _check_data(args, plan, plan.declaration)
    return plan


def _check_family(args: argparse.Namespace, plan: VideoPlan) -> FamilyDeclaration | None:
    declaration = video_family(args.model_name)
    if declaration is None:
        known = [d.video_model_name for d in families.DECLARATIONS if d.is_video]
        plan.errors.append(msg(
            "video.preflight.model_name", "--model_name {name}: this trainer has no video model of that name; it "
            "trains {known}", name=args.model_name, known=", ".join(known) or "-",
        ))
    return declaration


def _check_model(args: argparse.Namespace, plan: VideoPlan, declaration: FamilyDeclaration) -> None:
    path = args.pretrained_model_name_or_path
    if not Path(path).exists():
        if "/" in path and not Path(path).is_absolute():
            reason = hub_unreachable_reason()
            if reason is not None:
                plan.errors.append(msg(
                    "video.preflight.hub_model", "--pretrained_model_name_or_path {path} is not a local folder, and "
                    "the Hugging Face Hub cannot be reached ({reason}): download the model's diffusers folder (e.g. "
                    "with `huggingface-cli download {path}`) and give its path", path=path, reason=reason,
                ))
                return
            try:
                path = download_model(path, getattr(args, "revision", None), getattr(args, "cache_dir", None))
            except Exception as exc:  # not found, gated, no space: said with the hub's reason
                plan.errors.append(msg(
                    "video.preflight.hub_download", "--pretrained_model_name_or_path {path}: downloading it from the "
                    "Hugging Face Hub failed ({error})", path=path, error=f"{type(exc).__name__}: {exc}",
                ))
                return
            args.pretrained_model_name_or_path = path  # the run loads the downloaded folder
        plan.errors.append(msg("model.not_found", "model not found: {path}", path=path))
        return
    try:  # --transformer_id & co.: the run loads a view of the folder with those components (model_view.py)
        view = model_view(Path(path), args)
    except ComponentError as exc:
        plan.errors.append(str(exc))
        return
    if view != Path(path):
        args.pretrained_model_name_or_path = path = str(view)
    try:
        info = detect_model(path)
    except (ModelMismatchError, FileNotFoundError, ValueError) as exc:
        plan.errors.append(str(exc))
        return
    if info.family != declaration.name:
        plan.errors.append(msg(
            "video.preflight.other_family", "{path} is a {found} model, but --model_name {name} trains {label}: give "
            "a {label} folder or --model_name for that model", path=path, found=families.label(info.family),
            name=args.model_name, label=declaration.label,
        ))
        return
    plan.model = info


def download_model(repo_id: str, revision: str | None, cache_dir: str | None) -> str:
    """A hub model's diffusers folder in the Hugging Face cache (finetrainers loads hub ids the same way)."""
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, revision=revision, cache_dir=cache_dir)


def _check_data(args: argparse.Namespace, plan: VideoPlan, declaration: FamilyDeclaration) -> None:
    """Each dataset (v0.2's JSON entries, or v0.0.x's flags) scanned against its own buckets."""
    from backend.data.video.dataset import scan

    temporal, spatial = declaration.temporal_compression, declaration.spatial_compression
    try:
        sources = sources_from_args(args)
    except VideoDataError as exc:
        plan.errors.append(str(exc))
        return
    for source in sources:
        try:
            records = load_records(source.data_root, source.dataset_file, source.video_column, source.caption_column,
                                   source.id_token)
            buckets = _buckets(source, declaration)
        except VideoDataError as exc:
            plan.errors.append(str(exc))
            continue
        scanned, problems = scan(records, buckets, temporal, spatial)
        if problems:
            plan.errors.append(format_problems(problems))
        plan.scanned += scanned
        plan.reshape_modes += [source.reshape_mode] * len(scanned)


def _buckets(source: DataSource, declaration: FamilyDeclaration) -> Buckets:
    temporal, spatial = declaration.temporal_compression, declaration.spatial_compression
    if not source.video_buckets and not source.image_buckets:
        return default_video_buckets(temporal, spatial)
    buckets = parse_buckets(list(source.video_buckets), list(source.image_buckets))
    check_buckets(buckets, temporal, spatial, declaration.label)
    return buckets


def _check_parallel(args: argparse.Namespace, plan: VideoPlan) -> None:
    """Data parallel over the processes accelerate launched; the other degrees are not run here."""
    for name in PARALLEL_DEGREES:
        value = getattr(args, name, None)
        if value is not None and value > 1:
            plan.errors.append(msg(
                "video.preflight.parallel", "--{name} {value}: this trainer runs data parallel only (one copy of the "
                "model per process, started by accelerate launch --num_processes N); set it to 1", name=name,
                value=value,
            ))
    degree = getattr(args, "dp_degree", None)
    if degree is not None and degree not in (1, world_size()):
        plan.errors.append(msg(
            "video.preflight.dp_degree", "--dp_degree {value} but {processes} process(es) were launched: launch with "
            "accelerate launch --num_processes {value}, or leave --dp_degree at 1", value=degree, processes=world_size(),
        ))


def _check_method(args: argparse.Namespace, plan: VideoPlan) -> None:
    if args.training_type != "lora" and args.layerwise_upcasting_modules:
        plan.errors.append(msg(
            "video.preflight.upcasting_full", "--layerwise_upcasting_modules stores frozen weights in fp8; a "
            "full fine-tune trains the transformer's own weights: remove it, or use --training_type lora",
        ))


# Accepted for finetrainers' command lines, without effect here (said, so nobody waits for them to work).
_WITHOUT_EFFECT: dict[str, tuple[object, Callable[[], str]]] = {
    "enable_model_cpu_offload": (False, lambda: msg(
        "video.no_effect.cpu_offload", "validation runs with the models on the training device")),
    "dataset_shuffle_buffer_size": (1, lambda: msg(
        "video.no_effect.shuffle", "each epoch's batches are shuffled as a whole (deterministically by --seed)")),
    "precomputation_items": (512, lambda: msg(
        "video.no_effect.precompute_all", "--enable_precomputation computes every clip once, before the first step")),
    "precomputation_once": (False, lambda: msg(
        "video.no_effect.precompute_all", "--enable_precomputation computes every clip once, before the first step")),
    "precomputation_reuse": (False, lambda: msg(
        "video.no_effect.reuse", "precomputed files are always reused while they match their clip, caption and "
        "model, and computed again when they do not")),
    "logging_steps": (1, lambda: msg("video.no_effect.logging", "every step is logged")),
    "parallel_backend": ("accelerate", lambda: msg("video.no_effect.backend", "runs are launched through accelerate")),
    "pin_memory": (False, lambda: msg(
        "video.no_effect.pin_memory", "batches come from pinned memory whenever training runs on CUDA")),
    "nccl_timeout": (600, lambda: msg(
        "video.no_effect.timeouts", "the processes accelerate launches connect with accelerate's own timeouts")),
    "variant": (None, lambda: msg("video.no_effect.variant", "the plain weight files are loaded")),
    "beta3": (None, lambda: msg("video.no_effect.beta3", "adam and adamw have no third beta")),
    "init_timeout": (300, lambda: msg(
        "video.no_effect.timeouts", "the processes accelerate launches connect with accelerate's own timeouts")),
}


def _dtype_notes(args: argparse.Namespace) -> list[str]:
    """Component dtypes finetrainers sets one by one; here the text encoders (and the VAE, unless fp32) run in
    the transformer's compute dtype, so a different choice is said rather than dropped."""
    compute = {"no": "fp32"}.get(PRECISIONS[args.transformer_dtype], PRECISIONS[args.transformer_dtype])
    notes = []
    for name in ("text_encoder_dtype", "text_encoder_2_dtype", "text_encoder_3_dtype", "vae_dtype"):
        value = getattr(args, name)
        if value != "bf16" and value != compute and not (name == "vae_dtype" and value == "fp32"):
            notes.append(msg("video.preflight.no_effect", "--{name} {value} has no effect here: {reason}", name=name,
                             value=value, reason=msg("video.no_effect.dtype", "it runs in the transformer's compute "
                                                     "dtype, {dtype} (only --vae_dtype fp32 is kept)", dtype=compute)))
    if args.layerwise_upcasting_storage_dtype != "float8_e4m3fn":
        notes.append(msg("video.preflight.no_effect", "--{name} {value} has no effect here: {reason}",
                         name="layerwise_upcasting_storage_dtype", value=args.layerwise_upcasting_storage_dtype,
                         reason=msg("video.no_effect.e4m3", "frozen weights are stored as float8_e4m3fn")))
    return notes


def unused_settings(args: argparse.Namespace) -> list[str]:
    unused = _dtype_notes(args)
    unused += [msg("video.preflight.no_effect", "--{name} {value} has no effect here: {reason}", name=name,
                   value=getattr(args, name), reason=reason())
               for name, (default, reason) in _WITHOUT_EFFECT.items() if getattr(args, name) != default]
    if args.precomputation_dir and not (args.enable_precomputation or args.precompute_conditions):
        unused.append(msg("video.preflight.no_effect", "--{name} {value} has no effect here: {reason}",
                          name="precomputation_dir", value=args.precomputation_dir, reason=msg(
                              "video.no_effect.no_precompute", "nothing is precomputed without "
                              "--enable_precomputation (or --precompute_conditions)")))
    return unused


def _check_resume(args: argparse.Namespace, plan: VideoPlan) -> None:
    try:
        plan.resume = resume_folder(getattr(args, "resume_from_checkpoint", None), args.output_dir)
    except CheckpointNotFound as exc:
        plan.errors.append(str(exc))


def _check_hub(args: argparse.Namespace, plan: VideoPlan) -> None:
    if not getattr(args, "push_to_hub", False):
        return
    if not getattr(args, "hub_model_id", None):
        plan.errors.append(msg("video.preflight.hub_model_id", "--push_to_hub needs --hub_model_id (the repository "
                               "to upload to, e.g. your-name/my-video-lora)"))
    reason = hub_unreachable_reason()
    if reason is not None:
        plan.errors.append(msg(
            "video.preflight.hub_offline", "--push_to_hub: the Hugging Face Hub cannot be reached ({reason}); train "
            "without --push_to_hub and upload the output folder later", reason=reason,
        ))


def _bucket_counts(plan: VideoPlan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for clip in plan.scanned:
        key = "x".join(map(str, clip.bucket))
        counts[key] = counts.get(key, 0) + 1
    return counts
