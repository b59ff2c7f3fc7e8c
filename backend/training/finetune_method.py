"""Full fine-tuning: the U-Net (and with --train_text_encoder the text encoders) trained directly.

The second training method on the shared loop (the first is network_method.NetworkTraining);
the loop talks to both through the same calls (backend/training/method.py).

What is trained follows sd-scripts: the U-Net at --learning_rate, the text encoder(s) with
--train_text_encoder at --learning_rate_te (SD) or --learning_rate_te1/--learning_rate_te2 (SDXL),
each defaulting to --learning_rate. A part whose rate is 0 stays frozen (sdxl_train's rule, applied
to both commands).

Precision. Trained parts stay float32 under mixed precision (autocast computes in half precision,
the optimizer updates float32 weights), or in the half type with --full_fp16/--full_bf16. Frozen
parts run in the compute dtype to save memory; their weights as loaded are kept (on the CPU, by
reference: loading already put them there) and written into every save, so a saved model's frozen
parts, VAE included, are the base model's bit for bit and not a half-precision round trip.

EMA (--ema): ema.EmaWeights after each optimizer step; --ema_save decides whether saves hold the
averaged weights or hold the raw ones with the averages beside them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from backend.families.loaded import family
from backend.finite_weights import WeightProblems, check_weights
from backend.models.components import Components
from backend.training.block_lr import block_param_groups, parse_block_lrs
from backend.training.distributed import check_in_sync
from backend.training.ema import EmaWeights
from backend.training.finetune_files import ModelFormat, ema_path, model_format
from backend.training.method_options import FineTuneConfig
from backend.training.sharded import TrainedModules

logger = logging.getLogger(__name__)

T = TypeVar("T")

UNET = "unet"
NETWORK_KEYS = ("ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_dropout", "ss_network_args",
                "ss_unet_lr", "ss_text_encoder_lr", "ss_scale_weight_norms")


def text_encoder_names(count: int) -> list[str]:
    return [f"text_encoder{i}" for i in range(1, count + 1)]


def part_learning_rates(config: FineTuneConfig, num_text_encoders: int) -> dict[str, float]:
    """The parts to train and their learning rates (parts at rate 0 are left out: frozen)."""
    rates: dict[str, float] = {}
    if config.learning_rate > 0:
        rates[UNET] = config.learning_rate
    if config.train_text_encoder:
        given = ([config.learning_rate_te] if num_text_encoders == 1
                 else [config.learning_rate_te1, config.learning_rate_te2])
        for name, rate in zip(text_encoder_names(num_text_encoders), given, strict=True):
            rate = config.learning_rate if rate is None else rate
            if rate > 0:
                rates[name] = rate
    return rates


def named_modules(components: Components) -> dict[str, torch.nn.Module]:
    modules: dict[str, torch.nn.Module] = {UNET: components.unet, "vae": components.vae}
    modules.update(zip(text_encoder_names(len(components.text_encoders)), components.text_encoders, strict=True))
    return modules


def source_states(components: Components, trained: set[str]) -> dict[str, dict[str, torch.Tensor]]:
    """References to the frozen parts' weights as loaded; call before the modules are cast or moved."""
    return {name: module.state_dict() for name, module in named_modules(components).items() if name not in trained}


class FineTuneTraining:
    lora = False  # files are whole models (modelspec architecture without "/lora")
    network_args: dict[str, Any] = {}

    def __init__(self, config: FineTuneConfig, components: Components, rates: dict[str, float],
                 frozen_weights: dict[str, dict[str, torch.Tensor]]) -> None:
        if not rates:
            raise ValueError(
                "nothing to train: --learning_rate is 0 and no text encoder is trained; give the U-Net a learning "
                "rate, or use --train_text_encoder with a text-encoder rate above 0"
            )
        self.config = config
        self.components = components
        self.rates = rates
        self.frozen_weights = frozen_weights
        modules = named_modules(components)
        self.trained = TrainedModules({name: modules[name] for name in rates})
        for name, module in modules.items():
            module.requires_grad_(name in rates)
            module.train(name in rates)
        self.unet_block_groups: tuple[list[dict[str, Any]], list[str]] | None = None
        if config.block_lr and UNET in rates:  # freezes the blocks at rate 0: before the EMA
            self.unet_block_groups = block_param_groups(
                components.unet, parse_block_lrs(config.block_lr), dict(components.unet.config)
            )
        self.train_text_encoder = any(name != UNET for name in rates)
        self.text_encoders_stopped = False  # train_db's --stop_text_encoder_training reached
        self.format: ModelFormat = model_format(config.save_model_as, config.use_safetensors)
        self.engine: Any = None  # DeepSpeed/FSDP's prepared TrainedModules (sharded.prepare_sharded)
        self._gathered: dict[str, torch.Tensor] | None = None
        self.ema = EmaWeights(dict(self.trained.named_parameters()), config.ema_decay) if config.ema else None
        if config.diffusers_xformers:
            logger.info("--diffusers_xformers: attention runs through PyTorch SDPA (xformers is not used)")
        logger.info("fine-tuning %s", ", ".join(f"{name} (lr {rate:g})" for name, rate in rates.items()))

    # --- what the loop asks -------------------------------------------------------------------
    @property
    def trained_module(self) -> torch.nn.Module:
        return self.trained

    def param_groups(self) -> tuple[list[dict[str, Any]], list[str]]:
        groups, names = [], []
        for name, rate in self.rates.items():
            if name == UNET and self.unet_block_groups is not None:
                groups += self.unet_block_groups[0]
                names += self.unet_block_groups[1]
            else:
                groups.append({"params": list(self.trained[name].parameters()), "lr": rate})
                names.append(name)
        return groups, names

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.trained.parameters() if p.requires_grad]

    def forward(self, call: Callable[[], T]) -> T:
        """Run the text encoders and U-Net: through DeepSpeed's/FSDP's prepared module when there is one."""
        return self.engine(call) if self.engine is not None else call()

    def on_epoch_start(self) -> None:
        self.trained.train()
        if self.text_encoders_stopped:
            self._freeze_text_encoders()

    def on_step_start(self, step: int) -> None:
        """train_db's --stop_text_encoder_training: from that optimizer step on, the text encoders stay frozen
        (no gradients: the optimizer skips them; the saves keep their trained weights)."""
        stop = self.config.stop_text_encoder_training
        if stop is None or stop < 0 or step < stop or self.text_encoders_stopped or not self.train_text_encoder:
            return
        self._freeze_text_encoders()
        self.text_encoders_stopped = True
        self.train_text_encoder = False
        logger.info("text encoder training stopped at step %d (--stop_text_encoder_training)", step)

    def _freeze_text_encoders(self) -> None:
        for name in self.rates:
            if name != UNET:
                self.trained[name].requires_grad_(False)
                self.trained[name].train(False)

    def after_optimizer_step(self, device: torch.device) -> dict[str, float]:
        if self.ema is not None:
            self.ema.update()
        return {}

    def state_objects(self) -> list[Any]:
        """accelerate's state carries the trained weights (unless DeepSpeed/FSDP own them) and the EMA."""
        objects: list[Any] = [] if self.engine is not None else [self.trained]
        return objects + ([self.ema] if self.ema is not None else [])

    def sampling_modules(self) -> tuple[torch.nn.Module, ...]:
        return ()

    def prompt_text(self, text: str) -> str:
        return text

    def file_metadata(self, metadata: dict[str, str]) -> dict[str, str]:
        """The training record of a whole model: no network keys; what was trained, and the EMA."""
        config = self.config
        record = {key: value for key, value in metadata.items() if key not in NETWORK_KEYS}
        record["ss_train_unet"] = str(UNET in self.rates)
        record["ss_train_text_encoder"] = str(any(name != UNET for name in self.rates))  # (also once stopped)
        for name, rate in self.rates.items():
            record[f"ss_learning_rate_{name}"] = str(rate)
        record["ss_ema"] = str(bool(config.ema))
        if config.ema:
            record["ss_ema_decay"] = str(config.ema_decay)
        return record

    # --- saving -------------------------------------------------------------------------------
    def before_save(self, accelerator: Any) -> None:
        """On every process: gather sharded weights, or prove the copies are identical."""
        if self.engine is not None:
            self._gathered = accelerator.get_state_dict(self.engine)
        else:
            check_in_sync(accelerator, self.trained)

    def written_paths(self, path: Path) -> list[Path]:
        """Everything a save at `path` writes (old saves are pruned by these)."""
        if self.ema is not None and self.config.ema_save == "beside":
            return [path, ema_path(path, self.format.folder)]
        return [path]

    def _saved_trained_states(self) -> list[tuple[str, dict[str, dict[str, torch.Tensor]]]]:
        """The trained parts' weights each save writes: (label, states) for the file and the EMA file beside."""
        if self.ema is None:
            return [("", self._trained_states())]
        if self.config.ema_save == "beside":
            return [("", self._trained_states()), ("EMA ", self._ema_states())]
        return [("EMA ", self._ema_states())]

    def weight_problems(self, dtype: torch.dtype | None) -> WeightProblems:
        """Non-finite values in the trained weights a save writes (raw and/or EMA), cast to `dtype`.

        The frozen parts are the base model's weights as loaded and are not checked."""
        problems = WeightProblems()
        for label, states in self._saved_trained_states():
            flat = {f"{label}{part}.{key}": value for part, state in states.items() for key, value in state.items()}
            problems = problems.merge(check_weights(flat, dtype))
        return problems

    def saved_bytes(self, dtype: torch.dtype | None) -> int:
        """The size of one save (the whole model; twice with --ema_save beside), for the free-space check."""
        def size(states: dict[str, dict[str, torch.Tensor]]) -> int:
            return sum(t.numel() * (dtype or t.dtype).itemsize for state in states.values() for t in state.values()
                       if isinstance(t, torch.Tensor))

        frozen = size(self.frozen_weights)
        return sum(frozen + size(states) for _, states in self._saved_trained_states())

    def save(self, path: Path, dtype: torch.dtype | None, metadata: dict[str, str] | None) -> Path:
        ema_beside = self.ema is not None and self.config.ema_save == "beside"
        raw = self._trained_states()
        main = raw if (self.ema is None or ema_beside) else self._ema_states()
        self._write(path, main, dtype, metadata)
        if ema_beside:
            self._write(ema_path(path, self.format.folder), self._ema_states(), dtype, metadata)
        self._gathered = None
        return path

    def _trained_states(self) -> dict[str, dict[str, torch.Tensor]]:
        if self._gathered is None:
            return {name: module.state_dict() for name, module in self.trained.items()}
        return {name: {key[len(name) + 1:]: value for key, value in self._gathered.items()
                       if key.startswith(name + ".")} for name in self.rates}

    def _ema_states(self) -> dict[str, dict[str, torch.Tensor]]:
        assert self.ema is not None
        states = {}
        for name, module in self.trained.items():
            averaged = self.ema.averaged(name)
            # Buffers (none in these models today) are not averaged: saved as they are.
            states[name] = {key: averaged.get(key, value) for key, value in module.state_dict().items()}
        return states

    def _write(self, path: Path, trained: dict[str, dict[str, torch.Tensor]], dtype: torch.dtype | None,
               metadata: dict[str, str] | None) -> None:
        # The family's save writes to a temporary sibling and renames: never a half-written file or folder.
        states = {**self.frozen_weights, **trained}
        family(self.components.family).spec.save(self.components, path, dtype=dtype, metadata=metadata,
                                                  states=states, safetensors=self.format.safetensors)
