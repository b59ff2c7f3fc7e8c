"""Build everything a training run needs, in order: accelerator, model, network, data, optimizer.

Kept apart from the loop so the loop reads as the training algorithm only; the model's placement is
model_setup.py. `build_run` is where the options are sliced: every room it builds takes its typed slice
(`XConfig.from_args`, option_slice.py), not the namespace. The namespace itself goes on only to a
network plug-in's `prepare_network(args)` (sd-scripts' interface) and to the metadata writer
(`TrainingRun.args`, run_metadata.py), which records dozens of options.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import (
    DataLoaderConfiguration,
    InitProcessGroupKwargs,
    ProjectConfiguration,
    broadcast_object_list,
)

from backend.data.caption_templates import template_captions
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
from backend.objectives.ddpm import DDPMObjective
from backend.objectives.loss import LossConfig
from backend.options.schema import LECO_COMMANDS
from backend.training.base_weights import BaseWeightsConfig, merge_base_weights
from backend.training.block_swap import BlockSwapError, SwapPlan, optimizer_state_to
from backend.training.block_swap_options import BlockSwapConfig
from backend.training.checkpoints import OutputNames, SaveConfig, TrainState, output_names, read_train_state
from backend.training.compile import CompileConfig, compile_settings, compile_unet
from backend.training.deepspeed_plugin import DeepSpeedConfig, make_plugin, single_process_environment
from backend.training.embedding_method import EmbeddingTraining
from backend.training.finetune_method import (
    FineTuneTraining,
    part_learning_rates,
    source_states,
    text_encoder_names,
)
from backend.training.fused_backward import FusedBackwardStep, FusedStepConfig
from backend.training.hub_upload import HubUploadConfig, HubUploader
from backend.training.initial_step import InitialStepConfig
from backend.training.leco_data import LecoStepGroup
from backend.training.leco_prompts import PromptSetting, load_prompt_settings
from backend.training.leco_step import LecoConfig, LecoModel, LecoStep
from backend.training.loss_scaling import allow_half_gradients
from backend.training.method import TrainingMethod
from backend.training.method_options import EmbeddingConfig, MethodConfig, NetworkConfig, method_config
from backend.training.model_setup import (
    ModelConfig,
    PlacementConfig,
    load_model,
    place_model,
    plan_block_swap,
    prepare_model,
)
from backend.training.network_method import NetworkTraining
from backend.training.optimizers import (
    OptimizerConfig,
    OptimizerSetup,
    create_optimizer,
    resolve_optimizer_name,
)
from backend.training.option_slice import OptionSlice
from backend.training.preflight import RunPlan, world_size
from backend.training.progress import ProgressReporter
from backend.training.resume_check import check_state_fits, run_record, same_settings_hint
from backend.training.run_errors import DivergenceConfig, ResumeMismatch, RunStopped
from backend.training.run_length import LengthConfig, total_steps
from backend.training.sample_prompts import SampleConfig
from backend.training.schedulers import SchedulerConfig, create_run_scheduler
from backend.training.sharded import accelerator_backend, prepare_sharded
from backend.training.step_config import StepConfig
from backend.training.text_cache import TextCacheConfig, TextEncoderCache, prepare_text_cache
from backend.training.trackers import TrackerConfig, init_trackers, log_folder, logged_config, prepare_wandb
from backend.training.validation import Validation, ValidationConfig, build_validation

logger = logging.getLogger(__name__)

PRECISION_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SAVE_DTYPES = {None: None, "float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class TrainingRun:
    args: argparse.Namespace  # for the metadata writer only (run_metadata.py): it records dozens of options
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
    seed: int  # --seed, drawn when not given
    step_config: StepConfig  # what a step reads (step.py)
    saving: SaveConfig  # what is saved, how often, how many kept
    sampling: SampleConfig
    divergence: DivergenceConfig  # the settings a diverged run's message names
    state_record: dict[str, Any]  # what a saved state is tied to (resume_check.run_record)
    resume_folder: str | None = None  # --resume
    text_cache: TextEncoderCache | None = None  # cached text-encoder outputs; None: encode per batch
    validation: Validation | None = None  # the held-out images' loss; None without --validation_split
    fused_backward: FusedBackwardStep | None = None  # --fused_backward_pass: steps taken during backward
    spec_configured: ModelSpecification | None = None  # the family's spec with the run's text options
    uploader: HubUploader | None = None  # --huggingface_repo_id: saves uploaded (main process only)
    # Files carry sd-scripts' ss_*/modelspec keys (run_metadata.py); the video trainer's PEFT files do not.
    file_metadata: bool = True
    # Sample prompts given as data (the video trainer's validation prompts); None: --sample_prompts' file.
    prompts: list[Any] | None = None
    initial: InitialStepConfig = InitialStepConfig()  # --initial_step/--initial_epoch: the step counted from
    # (batch, generators) -> its loss when the run's steps are not step.batch_loss's (LECO: leco_step.LecoStep).
    step_loss: Callable[[dict, Any], torch.Tensor] | None = None

    @property
    def spec(self) -> ModelSpecification:
        return self.spec_configured or self.family.spec


@dataclass(frozen=True)
class AcceleratorConfig(OptionSlice):
    """The accelerator's precision and process group (its trackers: trackers.py; DeepSpeed: deepspeed_plugin.py)."""

    mixed_precision: str
    full_fp16: bool  # float16 gradients through the loss scaler
    ddp_timeout: int | None = None  # minutes (sd-scripts' --ddp_timeout)


def process_group_handlers(config: AcceleratorConfig) -> list[InitProcessGroupKwargs]:
    """--ddp_timeout: how long the processes wait for each other (sd-scripts: minutes; 0 or unset: PyTorch's)."""
    if not config.ddp_timeout or config.ddp_timeout <= 0:
        return []
    return [InitProcessGroupKwargs(timeout=datetime.timedelta(minutes=config.ddp_timeout))]


def make_accelerator(config: AcceleratorConfig, trackers: TrackerConfig, deepspeed: DeepSpeedConfig, command: str,
                     run_config: dict[str, Any] | None = None) -> Accelerator:
    """The Accelerator, its trackers started. `run_config`: the options --log_config logs (trackers.logged_config)."""
    project_dir = log_folder(trackers)
    prepare_wandb(trackers, project_dir)
    plugin = make_plugin(deepspeed, world_size())
    if plugin is not None:
        single_process_environment()
        logger.info(msg("run.deepspeed", "DeepSpeed ZeRO stage {stage} (--deepspeed), offload_optimizer_device: "
                        "{device}", stage=deepspeed.zero_stage, device=deepspeed.offload_optimizer_device or "none"))
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        log_with=trackers.trackers,
        project_config=ProjectConfiguration(project_dir=project_dir, logging_dir=project_dir),
        # No dataloader is prepared (the dataset splits batches itself); this only makes the wrapped LR
        # scheduler step once per optimizer step rather than num_processes times, so schedules count
        # optimizer steps with any number of processes.
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        kwargs_handlers=process_group_handlers(config),
        deepspeed_plugin=plugin,
    )
    if accelerator.num_processes != world_size():
        # accelerate found nothing to connect the processes with (e.g. --multi_gpu without GPUs): each
        # would train alone and write the same files.
        raise RunStopped(msg(
            "run.processes_not_connected", "accelerate launch started {count} processes but they are not connected "
            "to each other; to train with several processes on the CPU set ACCELERATE_USE_CPU=1", count=world_size(),
        ))
    if config.full_fp16:
        allow_half_gradients(accelerator)  # float16 gradients through the fp16 loss scaler (loss_scaling.py)
    if trackers.trackers:
        init_trackers(accelerator, trackers, command, run_config)
    return accelerator


def prepare_method(method: MethodConfig, model: ModelConfig, placement: PlacementConfig,
                   plan: RunPlan, accelerator: Accelerator, weight_dtype: torch.dtype, plugin_args: argparse.Namespace,
                   block_swap: BlockSwapConfig | None = None, base_weights: BaseWeightsConfig | None = None,
                   ) -> tuple[ModelSpecification, Components, TrainingMethod]:
    """The model on its device and the training method: a network, or the model's own weights.
    `plugin_args` goes on unread to the network module (`NetworkTraining`). `block_swap`: --blocks_to_swap
    (a fine-tune swaps trained blocks too; preflight requires --fused_backward_pass for that)."""
    if isinstance(method, NetworkConfig):
        try:
            merge = (lambda loaded: merge_base_weights(base_weights, loaded)) if base_weights else None
            spec, components, swap = prepare_model(model, placement, plan, accelerator, weight_dtype,
                                                   train_text_encoders=not method.network_train_unet_only,
                                                   block_swap=block_swap, before_placing=merge)
        except BlockSwapError as exc:
            raise RunStopped(str(exc)) from exc
        network_method = NetworkTraining(method, components, plugin_args)
        network_method.network.to(accelerator.device)
        if placement.half_training:
            network_method.network.to(weight_dtype)
        if swap is not None:  # after the network: its layers wrap the blocks' layers, its weights stay put
            install_swap(swap, accelerator.device)
        return spec, components, network_method
    if isinstance(method, EmbeddingConfig):
        return prepare_embedding(method, model, placement, plan, accelerator, weight_dtype)
    spec, components = load_model(model, plan, accelerator)
    rates = part_learning_rates(method, len(components.text_encoders))
    frozen = source_states(components, set(rates))  # before place_model casts them
    try:
        swap = plan_block_swap(block_swap, components, accelerator.device) if block_swap else None
    except BlockSwapError as exc:
        raise RunStopped(str(exc)) from exc
    place_model(placement, accelerator, components, weight_dtype, frozenset(rates),
                host_blocks=swap.blocks if swap else ())
    fine_tune = FineTuneTraining(method, components, rates, frozen)
    if swap is not None:  # after the method marked the trained weights: those are written back after their steps
        install_swap(swap, accelerator.device, trained=True)
    return spec, components, fine_tune


def prepare_embedding(method: EmbeddingConfig, model: ModelConfig, placement: PlacementConfig, plan: RunPlan,
                      accelerator: Accelerator, weight_dtype: torch.dtype,
                      ) -> tuple[ModelSpecification, Components, TrainingMethod]:
    """Textual Inversion: the new rows added while the text encoders are float32 on the CPU, then the model placed
    (the text encoders stay float32: their embedding matrices are the trained parameters)."""
    spec, components = load_model(model, plan, accelerator)
    embedding = EmbeddingTraining(method, components)
    encoders = frozenset(text_encoder_names(len(components.text_encoders)))
    place_model(placement, accelerator, components, weight_dtype, encoders)
    embedding.keep_original_rows()
    return spec, components, embedding


def install_swap(swap: SwapPlan, device: torch.device, trained: bool = False) -> None:
    swapper = swap.swapper(device, trained=trained).install()
    logger.info(msg(
        "run.blocks_to_swap", "block swap: {count} of {total} transformer blocks ({counts}) wait in RAM, "
        "{size} GiB", count=len(swapper.state), total=len(swapper.blocks),
        counts=" + ".join(map(str, swap.counts)), size=f"{swapper.host_bytes / 2**30:.2f}",
    ))


@dataclass(frozen=True)
class LatentCacheConfig(OptionSlice):
    """--cache_latents (in memory) / --cache_latents_to_disk (files beside the images)."""

    cache_latents: bool
    cache_latents_to_disk: bool
    vae_batch_size: int
    skip_cache_check: bool  # trust existing cache files without comparing them with the images
    pretrained_model_name_or_path: str  # cache files name the VAE they came from
    highvram: bool  # the device's cache is cleared only when the image size changes, not after every batch
    vae: str | None = None  # --vae (the SD families' commands): cache files name it instead of the model

    @property
    def encoder_source(self) -> str:
        """What the latents come from: --vae's VAE, else the model's."""
        return self.vae or self.pretrained_model_name_or_path


def prepare_data(config: LatentCacheConfig, seed: int, plan: RunPlan, accelerator: Accelerator,
                 spec: ModelSpecification, components: Components, reporter: ProgressReporter) -> DatasetGroup:
    # Batches planned at the global batch size, this process's share of each loaded (data/shares.py).
    datasets = [TrainDataset(dataset_spec, seed=seed, processes=accelerator.num_processes)
                for dataset_spec in plan.dataset_specs]
    group = DatasetGroup(datasets, seed=seed, rank=accelerator.process_index)
    if config.cache_latents or config.cache_latents_to_disk:
        vae = components.vae

        def encode(pixels: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return spec.encode_images(vae, pixels)

        def progress(done: int, total: int) -> None:
            if total:
                reporter.emit("cache", what="latents", done=done, total=total)

        # Disk caches: the main process writes them, then the others read them. In memory, all encode at once.
        with accelerator.main_process_first() if config.cache_latents_to_disk else contextlib.nullcontext():
            cache_latents(
                group, encode, config.vae_batch_size, to_disk=config.cache_latents_to_disk,
                arch=family(components.family).latent_cache_arch,
                encoder_id=model_identity(config.encoder_source),
                skip_check=config.skip_cache_check, progress=progress,
                free_memory=torch.cuda.empty_cache if accelerator.device.type == "cuda" else None,
                highvram=config.highvram,
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


# (seed, accelerator, spec, components, reporter) -> the run's datasets; the video command brings its own.
DataBuilder = Callable[[int, Accelerator, ModelSpecification, Components, ProgressReporter], DatasetGroup]


def build_run(args: argparse.Namespace, command: str, plan: RunPlan, data: DataBuilder | None = None) -> TrainingRun:
    """The run, built from the options: each room gets its slice of them. `data`: the datasets' builder
    (default: the image datasets of `plan`, latents cached as the options say)."""
    deepspeed = DeepSpeedConfig.from_args(args)
    accelerator = make_accelerator(AcceleratorConfig.from_args(args), TrackerConfig.from_args(args), deepspeed,
                                   command, run_config=logged_config(args, command))
    if args.seed is None:
        # Recorded in the metadata, so the run can be repeated; the main process's draw for all, since
        # the seed fixes the network's initial weights and the data order every process must share.
        args.seed = broadcast_object_list([random.randint(0, 2**31 - 1)])[0]
    seed: int = args.seed
    reporter = ProgressReporter(enabled=accelerator.is_main_process)
    torch.manual_seed(seed)
    weight_dtype = PRECISION_DTYPES[args.mixed_precision]
    method_options = method_config(args, command)
    placement = PlacementConfig.from_args(args)
    spec, components, method = prepare_method(
        method_options, ModelConfig.from_args(args), placement, plan, accelerator, weight_dtype, plugin_args=args,
        block_swap=BlockSwapConfig.from_args(args), base_weights=BaseWeightsConfig.from_args(args),
    )
    text_options = family(components.family).text_options
    if text_options is not None:  # the family's own prompt-encoding options (FLUX.1: T5 length and mask)
        spec = spec.configured(text_options.from_args(args), components)
    compile_options = compile_settings(CompileConfig.from_args(args), accelerator)
    if compile_options is not None:
        compile_unet(components.unet, compile_options)  # after the network hooked in: compiled with it

    leco = LecoConfig.from_args(args) if command in LECO_COMMANDS else None
    length = LengthConfig.from_args(args)
    if leco is not None:  # no images: one empty batch per step (leco_data.py)
        group = LecoStepGroup(load_prompt_settings(leco.prompts_file), leco.prompts_file,
                              length.max_train_steps * length.gradient_accumulation_steps, seed,
                              accelerator.num_processes, accelerator.process_index)
    elif data is None:
        group = prepare_data(LatentCacheConfig.from_args(args), seed, plan, accelerator, spec, components, reporter)
    else:
        group = data(seed, accelerator, spec, components, reporter)
    if isinstance(method_options, EmbeddingConfig) and (method_options.use_object_template
                                                        or method_options.use_style_template):
        group.use_caption_templates(template_captions(method_options.token_string, method_options.use_style_template))
    text_cache = prepare_text_cache(
        TextCacheConfig.from_args(args), accelerator, spec, components, group, weight_dtype, reporter
    )
    steps, epochs = total_steps(length, len(group))
    group.set_steps(length.gradient_accumulation_steps, steps)  # before the loader's workers copy the group
    workers = args.max_data_loader_n_workers
    if deepspeed.deepspeed:  # sd-scripts (prepare_deepspeed_args): more workers fail under DeepSpeed
        workers = min(workers, 1)
    loader = make_dataloader(
        group, workers, args.persistent_data_loader_workers,
        pin_memory=accelerator.device.type == "cuda",
    )

    step_config = StepConfig.from_args(args)
    optimizer_options = OptimizerConfig.from_args(args)
    groups, descriptions = method.param_groups()
    optimizer_setup = create_optimizer(
        resolve_optimizer_name(optimizer_options), groups, optimizer_options.learning_rate,
        optimizer_options.optimizer_args, device=accelerator.device,
    )
    lr_scheduler = create_run_scheduler(optimizer_setup.optimizer, SchedulerConfig.from_args(args), steps)
    if accelerator_backend(accelerator) and isinstance(method, FineTuneTraining):
        # DeepSpeed/FSDP (backend/training/sharded.py): the trained modules are prepared with the optimizer.
        method.engine, optimizer, lr_scheduler = prepare_sharded(
            accelerator, method.trained, optimizer_setup.optimizer, lr_scheduler, args.train_batch_size
        )
    else:
        optimizer, lr_scheduler = accelerator.prepare(optimizer_setup.optimizer, lr_scheduler)
    fused_backward = None
    fused = FusedStepConfig.from_args(args).flag
    if fused:
        if accelerator_backend(accelerator):
            raise RuntimeError(f"{fused} cannot be combined with DeepSpeed or FSDP")
        fused_backward = FusedBackwardStep(
            optimizer_setup.optimizer, method.trainable_parameters(), step_config.max_grad_norm,
            accelerator.num_processes,
        )
    for state_object in method.state_objects():
        accelerator.register_for_checkpointing(state_object)

    resume_state = load_resume_state(accelerator, args.resume, method, optimizer) if args.resume else None
    if resume_state is not None and BlockSwapConfig.from_args(args).runs_on(accelerator.device.type):
        optimizer_state_to(optimizer_setup.optimizer, accelerator.device)  # swapped weights step on the device

    loss_config = LossConfig.from_args(args)
    loss_config.validate()
    run_family = family(components.family)
    objective_options = run_family.objective_options.from_args(args)
    objective_options.validate(loss_config)
    objective = run_family.objective(components, objective_options, loss_config)
    run_family.prepare_training(components, objective_options, [d.spec.resolution for d in group.datasets])
    saving = SaveConfig.from_args(args).for_epochs(epochs)
    step_loss = None
    if leco is not None:
        step_loss = leco_step(leco, group.settings, LecoModel(accelerator, run_family, spec, components, method,
                                                              getattr(method, "network", None), weight_dtype),
                              objective, loss_config, step_config)
    extension = method.format.extension if isinstance(method, FineTuneTraining) else saving.save_model_as
    return TrainingRun(
        args=args, command=command, accelerator=accelerator, reporter=reporter,
        components=components, method=method, group=group, loader=loader,
        optimizer_setup=optimizer_setup, optimizer=optimizer, lr_scheduler=lr_scheduler,
        lr_descriptions=descriptions, family=run_family,
        objective=objective,
        weight_dtype=weight_dtype,
        save_dtype=SAVE_DTYPES[saving.save_precision],
        names=output_names(saving.output_dir, saving.output_name, extension),
        total_steps=steps, num_epochs=epochs, resume_state=resume_state,
        started_at=time.time(), session_id=random.randint(0, 2**32 - 1),
        seed=seed, step_config=step_config, saving=saving, sampling=SampleConfig.from_args(args),
        divergence=DivergenceConfig.from_args(args),
        state_record=run_record(method_options, optimizer_options, components.family),
        resume_folder=args.resume, text_cache=text_cache,
        validation=build_validation(ValidationConfig.from_args(args), objective, group),
        fused_backward=fused_backward, spec_configured=spec,
        uploader=hub_uploader(HubUploadConfig.from_args(args), accelerator.is_main_process),
        initial=InitialStepConfig.from_args(args),
        step_loss=step_loss,
    )


def leco_step(config: LecoConfig, settings: list[PromptSetting], model: LecoModel, objective: Objective,
              loss: LossConfig, step_config: StepConfig) -> LecoStep:
    """LECO's step, with every prompt of its settings encoded once (the text encoders are frozen)."""
    components = model.components
    if not isinstance(objective, DDPMObjective) or not isinstance(model.method, NetworkTraining):
        raise RunStopped(f"LECO trains a network on a DDPM model (SD 1.x/2.x, SDXL), not {components.family}")
    prompts = sorted({prompt for setting in settings for prompt in setting.prompts})
    with torch.no_grad(), model.accelerator.autocast():
        embeds = {prompt: model.spec.encode_captions(components, [prompt], step_config.max_token_length,
                                                     step_config.clip_skip) for prompt in prompts}
    return LecoStep(config, model, settings, embeds, objective, loss, components.configs.prediction_type)


def hub_uploader(config: HubUploadConfig, main_process: bool) -> HubUploader | None:
    return HubUploader(config) if config.huggingface_repo_id and main_process else None
