"""Everything that can be checked before a model is loaded, gathered into one report.

The same checks run before every training run and, with `--preflight`, alone: the report is
printed as one JSON object and the process exits 0 (training could start) or 1 (errors listed).
Each problem is collected rather than raised, so the user sees all of them at once.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from backend.data.config import specs_from_args, specs_from_dataset_config
from backend.data.errors import DatasetError
from backend.data.preflight import preflight_report
from backend.data.specs import DatasetSpec, varying_caption_settings
from backend.families import DECLARATIONS, declaration, default_for_command, model_file_options
from backend.messages import msg
from backend.models.detect import ModelInfo, ModelMismatchError, check_model_flags, detect_model
from backend.models.files import read_shapes
from backend.networks.args import NetworkArgsError, check_known_keys, parse_network_args
from backend.networks.layout import check_layout_keys
from backend.networks.loader import NetworkModuleError, load_network_module, unread_network_args
from backend.options.dataset_config import load_dataset_config, subset_kinds_for
from backend.options.errors import OptionError
from backend.options.schema import FINETUNE_COMMANDS, LECO_COMMANDS, LORA_COMMANDS, TEXTUAL_INVERSION_COMMANDS
from backend.options.value_warnings import value_warnings
from backend.training.attention import AttentionConfig, attention_warnings
from backend.training.block_swap_options import (
    BlockSwapConfig,
    block_swap_model_problems,
    block_swap_problems,
)
from backend.training.checkpoints import read_train_state
from backend.training.dataset_flags import DatasetFlagsConfig, dataset_flag_problems
from backend.training.deepspeed_plugin import DeepSpeedConfig, deepspeed_problems
from backend.training.embedding_preflight import check_embedding
from backend.training.finetune_preflight import check_finetune
from backend.training.initial_step import InitialStepConfig, initial_step_problems
from backend.training.input_files import network_rank_problem, network_weights_problem, state_file_problems
from backend.training.leco_preflight import check_leco
from backend.training.lr_check import learning_rate_warning
from backend.training.mask_check import MaskConfig, mask_problems
from backend.training.memory_preflight import memory_check
from backend.training.method_options import method_config
from backend.training.optimizers import OptimizerConfig, check_optimizer_available, resolve_optimizer_name
from backend.training.output_space import output_problems
from backend.training.resume_check import mismatch_message, record_mismatches, run_record
from backend.training.run_length import LengthConfig, total_steps
from backend.training.sample_prompts import PromptFileError, check_sampler_available, load_sample_prompts
from backend.training.sharded import launch_problems
from backend.training.trackers import TrackerConfig, tracker_problems

if TYPE_CHECKING:
    from backend.networks.models import NetworkLayout

LORA_FORMATS = ("safetensors", "ckpt", "pt")


@dataclass
class RunPlan:
    command: str
    model: ModelInfo | None = None
    dataset_specs: list[DatasetSpec] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def world_size() -> int:
    """Processes in this run (accelerate launch sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """For output before an Accelerator exists (accelerate launch sets RANK in every process)."""
    return int(os.environ.get("RANK", "0")) == 0


def _check_model(args: argparse.Namespace, plan: RunPlan) -> None:
    path = args.pretrained_model_name_or_path
    try:
        plan.model = detect_model(path)
        plan.warnings += check_model_flags(
            plan.model,
            command=plan.command,
            v2=args.v2,
            v_parameterization=args.v_parameterization,
            options=vars(args),
        )
    except FileNotFoundError:
        plan.errors.append(msg(
            "preflight.model_not_found", "--pretrained_model_name_or_path {path}: not found. Give a .safetensors/.ckpt "
            "file or a diffusers folder on this machine (hub ids are not downloaded by the trainer).", path=path,
        ))
    except ModelMismatchError as exc:  # also ModelFileError: a damaged, cut short or foreign file
        plan.errors.append(str(exc))
    except OSError as exc:  # e.g. no permission to read it
        plan.errors.append(msg("preflight.model_unreadable", "--pretrained_model_name_or_path {path}: cannot be read "
                               "({reason})", path=path, reason=exc.strerror or exc))
    else:
        _check_tokenizers(args, plan)


def _check_tokenizers(args: argparse.Namespace, plan: RunPlan) -> None:
    """A single file has no tokenizer: it must be cached or downloadable before the run starts."""
    if plan.model is None or plan.model.format == "diffusers":
        return
    from backend.models.tokenizers import TokenizerUnavailableError, load_family_tokenizers

    try:
        load_family_tokenizers(plan.model.family, args.tokenizer_cache_dir)
    except TokenizerUnavailableError as exc:
        plan.errors.append(str(exc))
    except (OSError, ValueError) as exc:  # a cached tokenizer folder with damaged files
        plan.errors.append(msg(
            "preflight.tokenizer_unreadable", "--tokenizer_cache_dir {folder}: the cached tokenizer cannot be read "
            "({error}); delete its folder there to download it again, or copy a working tokenizer (vocab.json and "
            "merges.txt) into it", folder=args.tokenizer_cache_dir, error=exc,
        ))


def _family_name(plan: RunPlan) -> str:
    """The model's family, else the one the command trains when the model could not be read."""
    if plan.model is not None:
        return plan.model.family
    return (default_for_command(plan.command) or DECLARATIONS[0]).name


def _check_model_files(args: argparse.Namespace, plan: RunPlan) -> None:
    """Parts given as files of their own (FLUX.1's --clip_l, --t5xxl, --ae) exist before anything loads; a part
    file the model has no use for (--clip_l for Chroma) is said to be ignored, as sd-scripts ignores it."""
    family = declaration(_family_name(plan))
    unused = [f"--{name}" for name in model_file_options()
              if name not in family.model_files and getattr(args, name, None)]
    if plan.model is not None and unused:
        plan.warnings.append(msg("preflight.model_file_unused", "{flags}: {label} has no such part; ignored",
                                 flags=", ".join(unused), label=family.label))
    for name in family.part_flags:
        path = getattr(args, name, None)
        if path and not Path(path).exists():
            plan.errors.append(msg("preflight.model_file_not_found", "--{option} {path}: not found. Give the "
                                   "file on this machine.", option=name, path=path))
    if getattr(args, "vae", None) and "vae" in family.replaceable_parts:
        _check_vae(args.vae, args.v_parameterization, plan)
    missing = [f"--{name}" for name in family.part_flags if not getattr(args, name, None)]
    if family.parts_may_be_inside and family.detection is not None and plan.model is not None \
            and plan.model.format != "diffusers" and missing:
        inside = family.detection.parts_inside(read_shapes(plan.model.path)[0])
        lacking = [flag for flag in missing if flag.removeprefix("--") not in inside]
        if lacking:
            plan.errors.append(msg(
                "preflight.model_parts_missing", "{path} is a single {label} file without {flags}: give them as files "
                "of their own (or a file or diffusers {label} folder that holds every part)",
                path=plan.model.path, label=family.label, flags=" ".join(lacking),
            ))
        return
    if plan.model is not None and plan.model.format != "diffusers" and missing and not family.parts_may_be_inside:
        plan.errors.append(msg(
            "preflight.model_files_missing", "{path} is a single {label} file, which holds only the denoiser: give "
            "{flags} as well (or a diffusers {label} folder, which holds every part)",
            path=plan.model.path, label=family.label, flags=" ".join(missing),
        ))


def _check_vae(path: str, v_parameterization: bool, plan: RunPlan) -> None:
    """sd-scripts' --vae: on this machine, a VAE whose weights fit the model's VAE (read from the file's header)."""
    if not Path(path).exists():
        plan.errors.append(msg("preflight.vae_not_found", "--vae {path}: not found. Give a VAE file (.safetensors, "
                               ".ckpt) or a diffusers VAE folder on this machine (hub ids are not downloaded by the "
                               "trainer).", path=path))
        return
    if plan.model is None:
        return  # what the VAE must fit is not known; the model's own error is listed
    from backend.models.configs import load_arch_configs
    from backend.models.vae_file import vae_file_problem

    family = declaration(plan.model.family)
    v_prediction = bool(plan.model.v_prediction if plan.model.v_prediction is not None else v_parameterization)
    configs = plan.model.configs or load_arch_configs(family.facts(v_prediction).config_set)
    problem = vae_file_problem(path, configs.vae, family.label)
    if problem:
        plan.errors.append(problem)


def _dataset_specs(args: argparse.Namespace, plan: RunPlan) -> None:
    if plan.command in LECO_COMMANDS:  # no images: the prompt file is checked with the method (leco_preflight.py)
        return
    family = declaration(plan.model.family) if plan.model else (default_for_command(plan.command) or DECLARATIONS[0])
    native = family.native_resolution(args.v_parameterization)
    try:
        if args.dataset_config:
            if args.train_data_dir or args.reg_data_dir or args.in_json:
                plan.warnings.append(msg(
                    "preflight.dataset_config_wins",
                    "--dataset_config is given, so --train_data_dir, --reg_data_dir and --in_json are ignored",
                ))
            kinds = subset_kinds_for(plan.command, masked_loss=getattr(args, "masked_loss", False))
            config = load_dataset_config(args.dataset_config, kinds)
            plan.dataset_specs = specs_from_dataset_config(config, args, native)
        elif plan.command == "fine_tune" and not args.in_json:
            return  # fine_tune reads captions from metadata only; check_finetune says what to give
        else:
            plan.dataset_specs = specs_from_args(args, native, warn=plan.warnings.append)
    except (DatasetError, OptionError) as exc:
        plan.errors.append(str(exc))
    errors, warnings = mask_problems(MaskConfig.from_args(args), plan.dataset_specs)
    plan.errors += errors
    plan.warnings += warnings


def _check_network(args: argparse.Namespace, plan: RunPlan) -> None:
    try:
        module = load_network_module(args.network_module)
        network_args = parse_network_args(args.network_args)
    except (NetworkModuleError, NetworkArgsError) as exc:
        plan.errors.append(str(exc))
        return
    if (args.fp8_base or args.fp8_base_unet) and args.network_module == "lycoris.kohya" \
            and network_args.get("bypass_mode", "").lower() not in ("true", "1"):
        plan.errors.append(msg(
            "preflight.fp8_lycoris", "--fp8_base with lycoris.kohya: LyCORIS computes each layer's weight as base + "
            "delta, which cannot be done on float8 weights; add bypass_mode=True to --network_args (LyCORIS then "
            "adds its output beside the base layer's, as LoRA does)",
        ))
    known = getattr(module, "KNOWN_KEYS", None)
    layout = _family_network_layout(plan) if module.__name__ == "backend.networks.lora" else None
    if known is None:  # not ours: warn about keys the module does not read
        plan.warnings += unread_network_args(module, network_args)
        family_layout = _family_network_layout(plan)  # FLUX.1, SD 3.5: plug-ins see sd-scripts' layout
        why = family_layout.foreign_modules_reason(network_args) if family_layout is not None else None
        if why:
            plan.errors.append(msg(
                "network.module.not_for_family", "--network_module {name} cannot train {model}: {why}",
                name=args.network_module, model=family_layout.label, why=why,
            ))  # fmt: skip
    else:
        try:
            if layout is not None:  # the family's own sd-scripts module (FLUX.1: lora_flux) reads its own keys
                check_layout_keys(layout, network_args, args.network_module)
            else:
                check_known_keys(network_args, known, args.network_module)
        except NetworkArgsError as exc:
            plan.errors.append(str(exc))
    if args.network_train_unet_only and args.network_train_text_encoder_only:
        plan.errors.append(msg("preflight.network_only_flags", "--network_train_unet_only and "
                               "--network_train_text_encoder_only exclude each other"))
    if args.dim_from_weights and not args.network_weights:
        plan.errors.append(msg("preflight.dim_from_weights_alone", "--dim_from_weights needs --network_weights (the "
                               "LoRA file to take the dims from)"))
    family = plan.model.family if plan.model else None
    problem = network_weights_problem(args.network_weights, family) if args.network_weights else None
    if problem is None and args.network_weights and not args.dim_from_weights and _uniform_lora(args):
        problem = network_rank_problem(args.network_weights, args.network_dim, _conv_dim(network_args))
    if problem:
        plan.errors.append(problem)
    for path in args.base_weights or ():  # merged into the model before training (training/base_weights.py)
        problem = network_weights_problem(path, family, option="base_weights")
        if problem:
            plan.errors.append(problem)


def _activation_offload_problems(args: argparse.Namespace, block_swap: BlockSwapConfig, device: str,
                                 warnings: list[str]) -> list[str]:
    """--cpu_offload_checkpointing: refused beside --blocks_to_swap (sd-scripts refuses it too); said when
    it turns checkpointing on, and when there is no GPU to offload from."""
    if block_swap.requested:
        return [msg("preflight.cpu_offload_checkpointing.swap", "--cpu_offload_checkpointing cannot be combined "
                    "with --blocks_to_swap (sd-scripts refuses the pair as well); use one of them")]
    if not args.gradient_checkpointing:
        warnings.append(msg("preflight.cpu_offload_checkpointing.implies", "--cpu_offload_checkpointing turns "
                            "--gradient_checkpointing on (it offloads what checkpointing keeps)"))
    if device != "cuda":
        warnings.append(msg("preflight.cpu_offload_checkpointing.no_cuda", "--cpu_offload_checkpointing: no CUDA "
                            "GPU, so there is nothing to offload; it has no effect here"))
    return []


def _family_network_layout(plan: RunPlan) -> NetworkLayout | None:
    """The network layout networks.lora will use for the run's model (the command's family when the model
    is not known)."""
    from backend.families.loaded import family

    return cast("NetworkLayout | None", family(_family_name(plan)).network_layout)


def _uniform_lora(args: argparse.Namespace) -> bool:
    """Our networks.lora with one rank for every module (per-block ranks are checked when the network is built)."""
    args_given = " ".join(args.network_args or [])
    return args.network_module == "networks.lora" and "block_dims" not in args_given


def _conv_dim(network_args: dict[str, str]) -> int | None:
    try:
        return int(network_args["conv_dim"]) if "conv_dim" in network_args else None
    except ValueError:
        return None  # check_known_keys says what is wrong with it


def _check_training(args: argparse.Namespace, plan: RunPlan) -> None:
    rate_warning = learning_rate_warning(OptimizerConfig.from_args(args), args.unet_lr, plan.command)
    if rate_warning:
        plan.warnings.append(rate_warning)
    device = "cuda" if _cuda_available() else "cpu"
    optimizer: str | None = None
    try:
        optimizer = resolve_optimizer_name(OptimizerConfig.from_args(args))
    except ValueError as exc:  # --use_8bit_adam / --use_lion_optimizer against --optimizer_type
        plan.errors.append(str(exc))
    else:
        problem = check_optimizer_available(optimizer, device, args.optimizer_args)
        if problem:
            plan.errors.append(problem)
    deepspeed_errors, deepspeed_warnings = deepspeed_problems(DeepSpeedConfig.from_args(args), optimizer)
    plan.errors += deepspeed_errors
    plan.warnings += deepspeed_warnings
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") and "MASTER_ADDR" in os.environ \
            and "WORLD_SIZE" not in os.environ:
        # accelerate's launcher for --cpu sets MASTER_ADDR when asked for several processes, then starts one.
        plan.warnings.append(msg(
            "preflight.cpu_single_process", "accelerate launch --cpu runs a single process whatever --num_processes "
            "says; for several CPU processes run: ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes "
            "N ...",
        ))
    if args.full_fp16 and args.mixed_precision != "fp16":
        plan.errors.append(msg("preflight.full_fp16_precision", "--full_fp16 needs --mixed_precision fp16"))
    if args.full_bf16 and args.mixed_precision != "bf16":
        plan.errors.append(msg("preflight.full_bf16_precision", "--full_bf16 needs --mixed_precision bf16"))
    if args.mixed_precision == "fp16" and device == "cpu":
        plan.errors.append(msg("preflight.fp16_on_cpu", "--mixed_precision fp16 needs a CUDA GPU; on the CPU use bf16 "
                               "or no"))
    if args.torch_compile:
        from backend.training.compile import backend_problem, toolchain_problem

        problem = backend_problem(args.dynamo_backend) or toolchain_problem(args.dynamo_backend, device)
        if problem:
            plan.errors.append(problem)
        elif device == "cpu" and args.dynamo_backend == "inductor":
            plan.warnings.append(msg(
                "preflight.compile_on_cpu", "--torch_compile on the CPU: measured slower than without it here (full "
                "SD 1.5 LoRA: 2.2 vs 1.5 s per step, 2.5 GiB more memory; docs/performance.md); it is meant for GPUs",
            ))
    plan.warnings += attention_warnings(AttentionConfig.from_args(args), device)
    block_swap = BlockSwapConfig.from_args(args)
    swap_errors, swap_warnings = block_swap_problems(block_swap, device, args.torch_compile)
    plan.errors += swap_errors + block_swap_model_problems(block_swap, plan.model)
    plan.warnings += swap_warnings
    if args.cpu_offload_checkpointing:
        plan.errors += _activation_offload_problems(args, block_swap, device, plan.warnings)
    if device == "cpu" and args.mem_eff_attn and args.lowram:
        plan.warnings.append(msg("preflight.gpu_memory_options_on_cpu", "--lowram and --mem_eff_attn: GPU memory "
                                 "options; they change nothing when training on the CPU"))
    elif device == "cpu" and (args.mem_eff_attn or args.lowram):
        plan.warnings.append(msg("preflight.gpu_memory_option_on_cpu", "{flag}: a GPU memory option; it changes "
                                 "nothing when training on the CPU", flag="--lowram" if args.lowram else "--mem_eff_attn"))
    tracker_errors, tracker_warnings = tracker_problems(TrackerConfig.from_args(args))
    plan.errors += tracker_errors
    plan.warnings += tracker_warnings
    if args.resume:
        try:
            read_train_state(args.resume)
        except FileNotFoundError as exc:
            plan.errors.append(str(exc))
    if args.sample_prompts:
        try:
            prompts = load_sample_prompts(args.sample_prompts)
        except PromptFileError as exc:
            plan.errors.append(str(exc))
        else:
            for name in {args.sample_sampler, *(p.sample_sampler for p in prompts if p.sample_sampler)}:
                problem = check_sampler_available(name)
                if problem:
                    plan.errors.append(msg("preflight.sampler_unavailable", "sampler {name}: {problem}", name=name,
                                           problem=problem))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _check_dataset(args: argparse.Namespace, plan: RunPlan) -> None:
    if not plan.dataset_specs:
        return
    word = args.token_string if plan.command in TEXTUAL_INVERSION_COMMANDS else None
    report = preflight_report(plan.dataset_specs, seed=args.seed or 0, processes=world_size(), word=word)
    plan.errors += report["errors"]
    plan.errors += [f"{p['path']}: {p['problem']}; {p['fix']}" for p in report["problems"]]
    plan.warnings += report["warnings"]
    batches = report.get("num_batches_per_epoch", 0)
    if batches == 0 and not report["errors"]:
        plan.errors.append(msg("preflight.no_images", "the dataset has no images to train on"))
    steps, epochs = total_steps(LengthConfig.from_args(args), max(batches, 1))
    report.update(total_steps=steps, epochs=epochs, processes=world_size())
    plan.report["dataset"] = report


def _check_text_cache(args: argparse.Namespace, plan: RunPlan) -> None:
    """sd-scripts' rules for cached text-encoder outputs: fixed captions, text encoders not trained."""
    if not (args.cache_text_encoder_outputs or args.cache_text_encoder_outputs_to_disk):
        return
    flag = "--cache_text_encoder_outputs" + ("" if args.cache_text_encoder_outputs else "_to_disk")
    if plan.command in LORA_COMMANDS and not args.network_train_unet_only:
        plan.errors.append(msg(
            "preflight.text_cache_needs_unet_only", "{flag} needs --network_train_unet_only: the text encoders do not "
            "run during training, so a text encoder LoRA could not learn", flag=flag,
        ))
    subsets: dict[str, list[str]] = {}
    for subset, setting in varying_caption_settings(s for spec in plan.dataset_specs for s in spec.subsets):
        subsets.setdefault(setting, []).append(repr(subset.name))
    for setting, names in subsets.items():
        name = setting if args.dataset_config else f"--{setting}"  # as the user wrote it
        plan.errors.append(msg(
            "preflight.text_cache_varying_captions", "{flag} cannot be used with {name} (subset {subsets}): the cache "
            "holds one fixed caption per image, but {setting} changes captions between epochs. Turn off {name} or "
            "the caching", flag=flag, name=name, subsets=", ".join(names), setting=setting,
        ))


def _check_schedule_and_loss(args: argparse.Namespace, plan: RunPlan) -> None:
    """Option combinations the run would otherwise refuse only after loading the model: the learning-rate
    schedule (it needs the step count), the noise and the loss settings."""
    from backend.families.loaded import family
    from backend.objectives.loss import LossConfig
    from backend.training.schedulers import SchedulerConfig, run_schedule_problem

    steps = (plan.report.get("dataset") or {}).get("total_steps", args.max_train_steps)
    problem = run_schedule_problem(SchedulerConfig.from_args(args), OptimizerConfig.from_args(args), steps)
    if problem:
        plan.errors.append(problem)
    loss = LossConfig.from_args(args)
    try:
        loss.validate()
        # The family's objective reads its own options (DDPM's noise options, flow matching's for FLUX.1).
        family(_family_name(plan)).objective_options.from_args(args).validate(loss)
    except ValueError as exc:
        plan.errors.append(str(exc))


def _check_validation(args: argparse.Namespace, plan: RunPlan) -> None:
    """The validation-loss options (the split's range and size are checked with the dataset)."""
    if not plan.dataset_specs:
        return
    if not any(spec.validation_split > 0 for spec in plan.dataset_specs):
        names = ("validation_seed", "validate_every_n_steps", "validate_every_n_epochs", "max_validation_steps")
        unused = [f"--{name}" for name in names if getattr(args, name) is not None]
        if unused:
            plan.warnings.append(msg("preflight.validation_unused", "{flags}: no effect without validation_split (no "
                                     "images are held out)", flags=", ".join(unused)))
        return


def _check_output(args: argparse.Namespace, plan: RunPlan) -> None:
    """Every folder the run writes can be written, and (where the size is known now) has room."""
    images = [s.image_dir for spec in plan.dataset_specs for s in spec.subsets if s.image_dir]
    dataset = plan.report.get("dataset") or {}
    steps = (dataset["total_steps"], dataset["epochs"]) if "total_steps" in dataset else None
    trained = None
    if plan.command in FINETUNE_COMMANDS:
        trained = {"unet"} if args.learning_rate > 0 else set()
        if args.train_text_encoder:
            trained |= {"text_encoder1", "text_encoder2"}
    plan.errors += output_problems(args, images, steps, trained)


def _check_initial_step(args: argparse.Namespace, plan: RunPlan) -> None:
    """--initial_step/--initial_epoch: below the run's steps (sd-scripts asserts it); --resume's step then ignored."""
    dataset = plan.report.get("dataset") or {}
    if "total_steps" not in dataset:
        return
    errors, warnings = initial_step_problems(
        InitialStepConfig.from_args(args), max(dataset.get("num_batches_per_epoch", 0), 1),
        args.gradient_accumulation_steps, dataset["total_steps"], args.resume,
    )
    plan.errors += errors
    plan.warnings += warnings


def _check_resume(args: argparse.Namespace, plan: RunPlan) -> None:
    """--resume: the state's recorded settings (network, method, model family, optimizer) match this run's."""
    if not args.resume:
        return
    try:
        saved = read_train_state(args.resume).run
    except FileNotFoundError:
        return  # said by _check_training
    plan.errors += state_file_problems(args.resume)
    if saved:
        family = plan.model.family if plan.model else None
        current = run_record(method_config(args, plan.command), OptimizerConfig.from_args(args), family)
        differences = record_mismatches(saved, current)
        if differences:
            plan.errors.append(mismatch_message(args.resume, differences))


def _check_method(args: argparse.Namespace, plan: RunPlan) -> None:
    """The training method's own options: a network (LoRA commands) or the fine-tune's."""
    if plan.command in LORA_COMMANDS or plan.command in LECO_COMMANDS:
        _check_network(args, plan)
        if args.save_model_as not in LORA_FORMATS:
            plan.errors.append(msg("preflight.lora_save_format", "--save_model_as {value}: a LoRA is saved as one of "
                                   "{formats}", value=args.save_model_as, formats=", ".join(LORA_FORMATS)))
        if plan.command in LECO_COMMANDS:
            check_leco(args, plan)
    elif plan.command in TEXTUAL_INVERSION_COMMANDS:
        check_embedding(args, plan)
    else:
        check_finetune(args, plan)
    validation_split = any(spec.validation_split > 0 for spec in plan.dataset_specs)
    plan.errors += launch_problems(args, plan.command, validation_split)


def _check_hub(args: argparse.Namespace, plan: RunPlan) -> None:
    """--huggingface_repo_id / --resume_from_huggingface need the Hub now; a state on the Hub is downloaded, and
    --resume names the local copy from here on (the checks below and the run read it)."""
    from backend.training.hub_upload import HubUploadConfig, download_state, hub_problems

    resume_from_hub = bool(getattr(args, "resume_from_huggingface", False) and args.resume)
    problems = hub_problems(HubUploadConfig.from_args(args), resume_from_hub)
    plan.errors += problems
    if not resume_from_hub:
        return
    if problems:
        args.resume = None  # (not looked for on disk: the message above says why it cannot be had)
        return
    try:
        args.resume = str(download_state(args.resume, getattr(args, "huggingface_token", None)))
    except Exception as exc:  # a wrong id, path or revision, no access
        plan.errors.append(msg("preflight.hub_resume_failed", "--resume {value}: the state could not be downloaded "
                               "from the Hub ({error})", value=args.resume, error=f"{type(exc).__name__}: {exc}"))
        args.resume = None


def build_plan(args: argparse.Namespace, command: str) -> RunPlan:
    plan = RunPlan(command)
    plan.warnings += value_warnings(args, command)
    _check_hub(args, plan)
    _check_model(args, plan)
    _check_model_files(args, plan)
    _dataset_specs(args, plan)
    _check_dataset(args, plan)
    _check_initial_step(args, plan)
    _check_method(args, plan)
    _check_training(args, plan)
    _check_schedule_and_loss(args, plan)
    _check_text_cache(args, plan)
    errors, warnings = dataset_flag_problems(DatasetFlagsConfig.from_args(args), command, plan.dataset_specs)
    plan.errors += errors
    plan.warnings += warnings
    _check_validation(args, plan)
    _check_output(args, plan)
    _check_resume(args, plan)
    if plan.model is not None:
        plan.report["model"] = {
            "path": plan.model.path,
            "format": plan.model.format,
            "family": plan.model.family,
            "v_prediction": plan.model.v_prediction,
        }
        plan.report["memory"], memory_warnings = memory_check(args, command, plan.model.family)
        plan.warnings += memory_warnings
    plan.report.update(command=command, ok=plan.ok, errors=plan.errors, warnings=plan.warnings)
    return plan
