"""A video run, built by the image trainer's `build_run` from the translated options, over the video
datasets, with finetrainers' file names and no sd-scripts metadata in the files."""

from __future__ import annotations

import argparse

import torch
from accelerate import Accelerator

from backend.models.components import Components
from backend.models.spec import ModelSpecification
from backend.training.preflight import RunPlan
from backend.training.progress import ProgressReporter
from backend.training.run_setup import TrainingRun, build_run
from backend.video.dataset import VideoDatasetGroup, VideoDataSpec, VideoTrainDataset, precompute_latents
from backend.video.outputs import VideoMethod, video_output_names
from backend.video.preflight import VideoPlan
from backend.video.translate import internal_namespace, template_command


def build_video_run(args: argparse.Namespace, plan: VideoPlan, processes: int) -> TrainingRun:
    lora = args.training_type == "lora"
    if args.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    internal = internal_namespace(args, processes, plan.resume)
    template = template_command(lora)
    clips = plan.clip_source()
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

            precompute_latents(group, encode,
                               lambda done, total: reporter.emit("cache", what="latents", done=done, total=total))
            if accelerator.device.type != "cpu":
                vae.to("cpu")  # training reads the latents only; validation videos bring the VAE back
        return group

    run = build_run(internal, template, RunPlan(template, model=plan.model), data=data)
    run.names = video_output_names(args.output_dir, lora)
    run.method = VideoMethod(run.method)
    run.file_metadata = False
    run.prompts = plan.prompts
    return run
