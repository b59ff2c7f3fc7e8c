"""A video run, built by the image trainer's `build_run` from the translated options, over the video
datasets, with finetrainers' file names and no sd-scripts metadata in the files."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from accelerate import Accelerator

from backend.models.components import Components
from backend.models.files import model_identity
from backend.models.spec import ModelSpecification
from backend.training.preflight import RunPlan
from backend.training.progress import ProgressReporter
from backend.training.run_setup import TrainingRun, build_run
from backend.video.dataset import VideoDatasetGroup, VideoDataSpec, VideoTrainDataset, precompute_latents
from backend.video.outputs import VideoMethod, video_output_names
from backend.video.precomputed import CONDITIONS_FOLDER, LatentStore, precomputation_folder
from backend.video.preflight import VideoPlan
from backend.video.translate import internal_namespace, template_command

logger = logging.getLogger(__name__)


def vae_identity(args: argparse.Namespace, vae: torch.nn.Module) -> str:
    """What precomputed latents record of the VAE that made them: its weights, dtype and tiling."""
    source = Path(args.vae_id) if args.vae_id else Path(args.pretrained_model_name_or_path) / "vae"
    weights = model_identity(source) if source.exists() else str(args.vae_id or args.pretrained_model_name_or_path)
    dtype = str(next(vae.parameters()).dtype).removeprefix("torch.")
    return f"{weights}|{dtype}|tiling={bool(args.enable_tiling)}"


def build_video_run(args: argparse.Namespace, plan: VideoPlan, processes: int) -> TrainingRun:
    lora = args.training_type == "lora"
    if args.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    internal = internal_namespace(args, processes, plan.resume)
    template = template_command(lora)
    clips = plan.clip_source()
    folder = precomputation_folder(args.precomputation_dir, args.output_dir)
    spec = VideoDataSpec(batch_size=args.batch_size, resolution=plan.largest_resolution(),
                         caption_dropout_p=float(getattr(args, "caption_dropout_p", 0.0) or 0.0))

    def data(seed: int, accelerator: Accelerator, model_spec: ModelSpecification, components: Components,
             reporter: ProgressReporter) -> VideoDatasetGroup:
        group = VideoDatasetGroup([VideoTrainDataset(clips, spec, seed, accelerator.num_processes)], seed=seed,
                                  rank=accelerator.process_index)
        vae = components.vae
        if args.enable_slicing and hasattr(vae, "enable_slicing"):  # the VAE: one clip of a batch at a time
            vae.enable_slicing()
        if args.enable_tiling and hasattr(vae, "enable_tiling"):  # and in overlapping spatial tiles
            vae.enable_tiling()
        if internal.cache_latents:

            def encode(video: torch.Tensor) -> torch.Tensor:
                return model_spec.encode_images(vae, video.to(vae.device, vae.dtype))

            def progress(done: int, total: int) -> None:
                reporter.emit("cache", what="latents", done=done, total=total)

            # The main process writes the files, then the others read them.
            with accelerator.main_process_first():
                store = LatentStore(folder)
                read = precompute_latents(group, encode, progress, store, vae_identity(args, vae))
            logger.info("latents: %d clips encoded, %d read from %s", len(clips) - read, read, store.folder)
            if accelerator.device.type != "cpu":
                vae.to("cpu")  # training reads the latents only; validation videos bring the VAE back
        return group

    if internal.cache_text_encoder_outputs:
        internal.text_cache_dir = str(folder / CONDITIONS_FOLDER)
    run = build_run(internal, template, RunPlan(template, model=plan.model), data=data)
    run.names = video_output_names(args.output_dir, lora)
    run.method = VideoMethod(run.method)
    run.file_metadata = False
    run.prompts = plan.prompts
    return run
