"""Build everything a training run needs, in order: accelerator, model, network, data, optimizer.

Kept apart from the loop so the loop reads as the training algorithm only. Frozen parts of the
model are cast to the compute dtype, put in eval mode and never see gradients; only the training
method's parameters are optimized.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, broadcast_object_list

from backend.data.dataset import DatasetGroup, TrainDataset
from backend.data.latent_cache import cache_latents
from backend.data.loader import make_dataloader
from backend.families.loaded import family
from backend.families.seam import ModelFamily
from backend.messages import msg
from backend.models.components import Components
from backend.models.files import model_identity
from backend.models.spec import ModelSpecification
from backend.objectives.base import Objective
from backend.objectives.loss import LossConfig
from backend.objectives.noise import NoiseConfig
from backend.options.schema import FINETUNE_COMMANDS
from backend.training.attention import attention_warnings, use_xformers
from backend.training.checkpoints import OutputNames, TrainState, output_names, read_train_state
from backend.training.compile import compile_settings, compile_unet
from backend.training.finetune_method import FineTuneTraining, part_learning_rates, source_states
from backend.training.fp8_weights import fp8_parts, store_weights_in_fp8
from backend.training.fused_backward import FusedBackwardStep
from backend.training.host_memory import return_freed_memory_to_os
from backend.training.loss_scaling import allow_half_gradients
from backend.training.method import TrainingMethod
from backend.training.network_method import NetworkTraining
from backend.training.optimizers import OptimizerSetup, create_optimizer, resolve_optimizer_name
from backend.training.preflight import RunPlan, total_steps, world_size
from backend.training.progress import ProgressReporter
from backend.training.resume_check import check_state_fits, same_settings_hint
from backend.training.run_errors import ResumeMismatch, RunStopped
from backend.training.schedulers import create_scheduler_from_args
from backend.training.sharded import accelerator_backend, prepare_sharded
from backend.training.text_cache import TextCacheConfig, TextEncoderCache, prepare_text_cache
from backend.training.validation import Validation, ValidationConfig, build_validation

logger = logging.getLogger(__name__)

PRECISION_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SAVE_DTYPES = {None: None, "float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class TrainingRun:
    args: argparse.Namespace
    command: str
    accelerator: Accelerator
    reporter: ProgressReporter
    family: ModelFamily
    components: Components
    method: TrainingMethod
    group: DatasetGroup
    loader: torch.utils.data.DataLoader
    optimizer_setup: OptimizerSetup
    optimizer: Any  # accelerate-wrapped
    lr_scheduler: Any
    lr_descriptions: list[str]
    objective: Objective  # the family's: noisy input, target and loss weights of a step
    weight_dtype: torch.dtype
    save_dtype: torch.dtype | None
    names: OutputNames
    total_steps: int
    num_epochs: int
    resume_state: TrainState | None
    started_at: float
    session_id: int
    text_cache: TextEncoderCache | None = None  # cached text-encoder outputs; None: encode per batch
    validation: Validation | None = None  # the held-out images' loss; None without --validation_split
    fused_backward: FusedBackwardStep | None = None  # --fused_backward_pass: steps taken during backward

    @property
    def spec(self) -> ModelSpecification:
        return self.family.spec


def make_accelerator(args: argparse.Namespace, command: str) -> Accelerator:
    log_with = None
    project_dir = None
    if args.logging_dir:
        log_with = args.log_with or "tensorboard"
        stamp = time.strftime("%Y%m%d%H%M%S")
        project_dir = str(Path(args.logging_dir) / f"{args.log_prefix or ''}{stamp}")
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=project_dir, logging_dir=project_dir),
        # No dataloader is prepared (the dataset splits batches itself); this only makes the wrapped LR
        # scheduler step once per optimizer step rather than num_processes times, so schedules count
        # optimizer steps with any number of processes.
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    if accelerator.num_processes != world_size():
        # accelerate found nothing to connect the processes with (e.g. --multi_gpu without GPUs): each
        # would train alone and write the same files.
        raise RunStopped(msg(
            "run.processes_not_connected", "accelerate launch started {count} processes but they are not connected "
            "to each other; to train with several processes on the CPU set ACCELERATE_USE_CPU=1", count=world_size(),
        ))
    if args.full_fp16:
        allow_half_gradients(accelerator)  # float16 gradients through the fp16 loss scaler (loss_scaling.py)
    if log_with:
        accelerator.init_trackers(args.log_tracker_name or command)
    return accelerator


def load_model(args: argparse.Namespace, plan: RunPlan, accelerator: Accelerator,
               dtype: torch.dtype = torch.float32) -> tuple[ModelSpecification, Components]:
    assert plan.model is not None
    spec = family(plan.model.family).spec
    components = spec.load(
        args.pretrained_model_name_or_path,
        v_prediction=True if args.v_parameterization else None,
        tokenizer_cache_dir=args.tokenizer_cache_dir,
        device=str(accelerator.device) if args.lowram else "cpu",
        dtype=dtype,
    )
    return spec, components


def place_model(args: argparse.Namespace, accelerator: Accelerator, components: Components,
                weight_dtype: torch.dtype, trained: frozenset[str] | None = None) -> None:
    """Modules onto the device. `trained` (fine-tuning) names the parts whose own weights are trained
    ("unet", "text_encoder1", ...): float32 master weights unless --full_fp16/--full_bf16. Frozen parts
    named by --fp8_base/--fp8_base_unet keep their Linear/Conv2d weights in float8 (fp8_weights.py)."""
    device = accelerator.device
    train_dtype = weight_dtype if (args.full_fp16 or args.full_bf16) else torch.float32
    trained = trained or frozenset()

    def dtype_of(name: str) -> torch.dtype:
        # Frozen weights in the compute dtype: half the memory and faster matmuls under autocast.
        return train_dtype if name in trained else weight_dtype

    in_fp8 = fp8_parts(args, len(components.text_encoders)) - trained
    fp8_report: list[str] = []

    def place(name: str, label: str, module: torch.nn.Module) -> None:
        if name in in_fp8:  # converted where it was loaded, so the device never holds a 16-bit copy
            fp8_report.append(f"{label} ({store_weights_in_fp8(module, weight_dtype)} layers)")
            module.to(device=device).eval()
        else:
            module.to(device=device, dtype=dtype_of(name)).eval()

    place("unet", "U-Net", components.unet)
    for index, encoder in enumerate(components.text_encoders, start=1):
        place(f"text_encoder{index}", f"text encoder {index}", encoder)
    if fp8_report:
        logger.info("weights stored in float8: %s", ", ".join(fp8_report))
        return_freed_memory_to_os()  # the 16-bit weights just freed would otherwise stay in the heap
    vae_dtype = torch.float32 if args.no_half_vae else weight_dtype
    components.vae.to(device=device, dtype=vae_dtype).eval()
    if use_xformers(args, device.type):
        components.unet.enable_xformers_memory_efficient_attention()
    for warning in attention_warnings(args, device.type):  # preflight said it too; the log keeps it
        logger.warning(warning)
    if args.gradient_checkpointing:
        components.unet.enable_gradient_checkpointing()
        for index, encoder in enumerate(components.text_encoders, start=1):
            wanted = f"text_encoder{index}" in trained if trained else not args.network_train_unet_only
            if wanted:
                # Non-reentrant: a LoRA run's frozen embeddings give the checkpointed layers no input that
                # requires grad, and reentrant checkpointing would then drop the network's gradients there.
                encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                # transformers checkpoints only in training mode, and a network run keeps the encoder in eval
                # mode: checkpointing did nothing. CLIP has no dropout, so the mode changes nothing else.
                encoder.train()


def prepare_model(args: argparse.Namespace, plan: RunPlan, accelerator: Accelerator,
                  weight_dtype: torch.dtype) -> tuple[ModelSpecification, Components]:
    """The frozen model (network training): read straight in the compute dtype, so loading never holds a
    float32 copy (SDXL: 7 GB of RAM instead of 14). Only a float32 VAE (--no_half_vae) needs float32."""
    spec, components = load_model(args, plan, accelerator, torch.float32 if args.no_half_vae else weight_dtype)
    place_model(args, accelerator, components, weight_dtype)
    return spec, components


def prepare_method(args: argparse.Namespace, command: str, plan: RunPlan, accelerator: Accelerator,
                   weight_dtype: torch.dtype) -> tuple[ModelSpecification, Components, TrainingMethod]:
    """The model on its device and the training method: a network, or the model's own weights."""
    if command not in FINETUNE_COMMANDS:
        spec, components = prepare_model(args, plan, accelerator, weight_dtype)
        network_method = NetworkTraining(args, components)
        network_method.network.to(accelerator.device)
        if args.full_fp16 or args.full_bf16:
            network_method.network.to(weight_dtype)
        return spec, components, network_method
    spec, components = load_model(args, plan, accelerator)
    rates = part_learning_rates(args, len(components.text_encoders))
    frozen = source_states(components, set(rates))  # before place_model casts them
    place_model(args, accelerator, components, weight_dtype, frozenset(rates))
    return spec, components, FineTuneTraining(args, components, rates, frozen)


def prepare_data(args: argparse.Namespace, plan: RunPlan, accelerator: Accelerator, spec: ModelSpecification,
                 components: Components, reporter: ProgressReporter) -> DatasetGroup:
    # Batches planned at the global batch size, this process's share of each loaded (data/shares.py).
    datasets = [TrainDataset(dataset_spec, seed=args.seed, processes=accelerator.num_processes)
                for dataset_spec in plan.dataset_specs]
    group = DatasetGroup(datasets, seed=args.seed, rank=accelerator.process_index)
    if args.cache_latents or args.cache_latents_to_disk:
        vae = components.vae

        def encode(pixels: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return spec.encode_images(vae, pixels)

        def progress(done: int, total: int) -> None:
            if total:
                reporter.emit("cache", what="latents", done=done, total=total)

        # Disk caches: the main process writes them, then the others read them. In memory, all encode at once.
        with accelerator.main_process_first() if args.cache_latents_to_disk else contextlib.nullcontext():
            cache_latents(
                group, encode, args.vae_batch_size, to_disk=args.cache_latents_to_disk,
                arch=family(components.family).latent_cache_arch,
                encoder_id=model_identity(args.pretrained_model_name_or_path),
                skip_check=args.skip_cache_check, progress=progress,
            )
        if accelerator.device.type != "cpu":
            # Training reads cached latents only; the VAE waits in RAM (sampling and the first
            # validation pass bring it back) and its VRAM goes to the U-Net.
            vae.to("cpu")
    return group


def load_resume_state(accelerator: Accelerator, folder: str, method: TrainingMethod, optimizer: Any) -> TrainState:
    """accelerate's state loaded into this run's objects, after checking that it fits them (names and
    shapes of the saved weights, the optimizer's groups), so a state of another network or optimizer is a
    clear error, not a traceback (or a crash at the first step)."""
    resume_state = read_train_state(folder)
    check_state_fits(folder, method.state_objects(), optimizer)
    try:
        accelerator.load_state(folder)
    except Exception as exc:
        logger.exception("loading the training state %s failed", folder)  # the traceback, for a bug report
        raise ResumeMismatch(
            msg("run.resume.load_failed", "--resume {folder} could not be loaded into this run ({error}). The state "
                "was probably saved with other settings (optimizer, network, model, or number of processes)",
                folder=folder, error=f"{type(exc).__name__}: {str(exc)[:300]}"),
            hint=same_settings_hint(),
        ) from exc
    logger.info(msg("run.resumed", "resumed from {folder} at step {step}", folder=folder,
                    step=resume_state.global_step))
    return resume_state


def build_run(args: argparse.Namespace, command: str, plan: RunPlan) -> TrainingRun:
    accelerator = make_accelerator(args, command)
    if args.seed is None:
        # Recorded in the metadata, so the run can be repeated; the main process's draw for all, since
        # the seed fixes the network's initial weights and the data order every process must share.
        args.seed = broadcast_object_list([random.randint(0, 2**31 - 1)])[0]
    reporter = ProgressReporter(enabled=accelerator.is_main_process)
    torch.manual_seed(args.seed)
    weight_dtype = PRECISION_DTYPES[args.mixed_precision]
    spec, components, method = prepare_method(args, command, plan, accelerator, weight_dtype)
    compile_options = compile_settings(args, accelerator)
    if compile_options is not None:
        compile_unet(components.unet, compile_options)  # after the network hooked in: compiled with it

    group = prepare_data(args, plan, accelerator, spec, components, reporter)
    text_cache = prepare_text_cache(
        TextCacheConfig.from_args(args), accelerator, spec, components, group, weight_dtype, reporter
    )
    loader = make_dataloader(
        group, args.max_data_loader_n_workers, args.persistent_data_loader_workers,
        pin_memory=accelerator.device.type == "cuda",
    )
    steps, epochs = total_steps(args, len(group))

    groups, descriptions = method.param_groups()
    optimizer_setup = create_optimizer(
        resolve_optimizer_name(args), groups, args.learning_rate, args.optimizer_args, device=accelerator.device
    )
    lr_scheduler = create_scheduler_from_args(optimizer_setup.optimizer, args, steps)
    if accelerator_backend(accelerator) and isinstance(method, FineTuneTraining):
        # DeepSpeed/FSDP (backend/training/sharded.py): the trained modules are prepared with the optimizer.
        method.engine, optimizer, lr_scheduler = prepare_sharded(
            accelerator, method.trained, optimizer_setup.optimizer, lr_scheduler, args.train_batch_size
        )
    else:
        optimizer, lr_scheduler = accelerator.prepare(optimizer_setup.optimizer, lr_scheduler)
    fused_backward = None
    if getattr(args, "fused_backward_pass", False):
        if accelerator_backend(accelerator):
            raise RuntimeError("--fused_backward_pass cannot be combined with DeepSpeed or FSDP")
        fused_backward = FusedBackwardStep(
            optimizer_setup.optimizer, method.trainable_parameters(), args.max_grad_norm, accelerator.num_processes
        )
    for state_object in method.state_objects():
        accelerator.register_for_checkpointing(state_object)

    resume_state = load_resume_state(accelerator, args.resume, method, optimizer) if args.resume else None

    noise_config = NoiseConfig.from_args(args)
    noise_config.validate()
    loss_config = LossConfig.from_args(args)
    loss_config.validate()
    run_family = family(components.family)
    objective = run_family.objective(components, noise_config, loss_config, zero_terminal_snr=args.zero_terminal_snr)
    extension = method.format.extension if isinstance(method, FineTuneTraining) else args.save_model_as
    return TrainingRun(
        args=args, command=command, accelerator=accelerator, reporter=reporter,
        components=components, method=method, group=group, loader=loader,
        optimizer_setup=optimizer_setup, optimizer=optimizer, lr_scheduler=lr_scheduler,
        lr_descriptions=descriptions, family=run_family,
        objective=objective,
        weight_dtype=weight_dtype,
        save_dtype=SAVE_DTYPES[args.save_precision],
        names=output_names(args.output_dir, args.output_name, extension),
        total_steps=steps, num_epochs=epochs, resume_state=resume_state,
        started_at=time.time(), session_id=random.randint(0, 2**32 - 1), text_cache=text_cache,
        validation=build_validation(ValidationConfig.from_args(args), objective, group),
        fused_backward=fused_backward,
    )
