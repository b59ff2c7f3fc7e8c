"""The `ss_*` and `modelspec.*` metadata written into trained files.

Readers (A1111's additional-networks panel, ComfyUI, civitai, sd-scripts' own tools) parse these
keys as sd-scripts writes them: every value a string (`str(value)`, so `None` is "None"), JSON for
the nested ones (`ss_tag_frequency`, `ss_dataset_dirs`, `ss_datasets`, `ss_bucket_info`,
`ss_network_args`). We keep that format exactly; options this trainer does not have are written as
sd-scripts would write their default.

The keys are sd-scripts' train_network.py ones (commit 48d368fa, lines 1003-1221): the training
keys below for every run, plus the dataset keys of the run's mode (backend/data/summary.py: flat
keys for the folder convention and --in_json, `ss_datasets` for --dataset_config). Full fine-tunes
carry the same record without the network keys (sd-scripts' fine_tune writes only `modelspec.*`).
Model hashes are written for a single-file base model only: for a diffusers folder sd-scripts
writes the placeholder "IsADirectory", which identifies nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.data.specs import parse_face_crop_range
from backend.families import declaration

# Kept even with --no_metadata, as sd-scripts does, so tools can still tell what the file is.
MINIMUM_KEYS = (
    "ss_v2",
    "ss_base_model_version",
    "ss_network_module",
    "ss_network_dim",
    "ss_network_alpha",
    "ss_network_args",
)

IMPLEMENTATION_VERSION = "kohya-trainer/0.1"

# Training options recorded under their own names (ss_<name>), as sd-scripts does.
RECORDED_OPTIONS = (
    "output_name", "learning_rate", "unet_lr", "gradient_checkpointing", "gradient_accumulation_steps",
    "max_train_steps", "lr_warmup_steps", "lr_scheduler", "network_module", "network_dim", "network_alpha",
    "network_dropout", "mixed_precision", "clip_skip", "max_token_length", "seed", "lowram", "noise_offset",
    "multires_noise_iterations", "multires_noise_discount", "adaptive_noise_scale", "zero_terminal_snr",
    "training_comment", "max_grad_norm", "caption_dropout_rate", "caption_dropout_every_n_epochs",
    "caption_tag_dropout_rate", "face_crop_aug_range", "prior_loss_weight", "min_snr_gamma",
    "scale_weight_norms", "ip_noise_gamma", "noise_offset_random_strength", "ip_noise_gamma_random_strength",
    "loss_type", "huber_schedule", "huber_scale", "huber_c", "validation_seed", "validation_split",
    "max_validation_steps", "validate_every_n_epochs", "validate_every_n_steps", "resize_interpolation",
)
RECORDED_FLAGS = ("full_fp16", "v2", "cache_latents", "fp8_base", "fp8_base_unet")


@dataclass
class RunFacts:
    """What the trainer knows about the run that the options alone do not say."""

    family: str  # the model's family (backend.families.names())
    session_id: int
    training_started_at: float
    num_train_images: int
    num_reg_images: int
    num_batches_per_epoch: int
    num_epochs: int
    optimizer_description: str
    text_encoder_lr: Any = None
    num_validation_images: int = 0
    network_args: dict[str, Any] | None = None  # as recorded in ss_network_args (None: no --network_args)
    # The ss_* keys describing the datasets (backend/data/summary.dataset_metadata): their shape
    # depends on the dataset mode, as in sd-scripts.
    dataset_keys: dict[str, str] = field(default_factory=dict)
    resolution: tuple[int, int] = (512, 512)


def base_model_version(family: str, v_parameterization: bool) -> str:
    """ss_base_model_version, as sd-scripts writes it for the family."""
    return declaration(family).base_model_version(v_parameterization)


def architecture(family: str, v_parameterization: bool, lora: bool) -> str:
    """modelspec.architecture ("/lora" for networks)."""
    return declaration(family).architecture(v_parameterization, lora)


def legacy_model_hash(path: str) -> str:
    """A1111's old 8-hex hash: sha256 of 64 KiB at offset 1 MiB (sd-scripts' `model_hash`)."""
    with open(path, "rb") as file:
        file.seek(0x100000)
        return hashlib.sha256(file.read(0x10000)).hexdigest()[:8]


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def training_metadata(args: argparse.Namespace, facts: RunFacts) -> dict[str, str]:
    """The ss_* keys sd-scripts' train_network writes at the start of training."""
    values: dict[str, Any] = {f"ss_{name}": getattr(args, name, None) for name in RECORDED_OPTIONS}
    values.update({f"ss_{name}": bool(getattr(args, name, False)) for name in RECORDED_FLAGS})
    values.update(
        ss_session_id=facts.session_id,
        ss_training_started_at=facts.training_started_at,
        ss_text_encoder_lr=facts.text_encoder_lr,
        ss_num_train_images=facts.num_train_images,
        ss_num_validation_images=facts.num_validation_images,
        ss_num_reg_images=facts.num_reg_images,
        ss_num_batches_per_epoch=facts.num_batches_per_epoch,
        ss_num_epochs=facts.num_epochs,
        ss_base_model_version=base_model_version(facts.family, bool(getattr(args, "v_parameterization", False))),
        ss_optimizer=facts.optimizer_description,
        ss_debiased_estimation=bool(getattr(args, "debiased_estimation_loss", False)),
        ss_sd_scripts_commit_hash=IMPLEMENTATION_VERSION,
    )
    if values["ss_face_crop_aug_range"]:  # sd-scripts records the parsed pair: "(2.0, 4.0)"
        values["ss_face_crop_aug_range"] = parse_face_crop_range(values["ss_face_crop_aug_range"])
    values.update(facts.dataset_keys)
    # The family's own options (FLUX.1: the flow-matching and T5 settings), as sd-scripts records them.
    values.update({f"ss_{name}": getattr(args, name, None) for name in declaration(facts.family).metadata_options})
    if facts.network_args is not None:
        values["ss_network_args"] = json.dumps(facts.network_args)
    model = getattr(args, "pretrained_model_name_or_path", None)
    if model:
        if os.path.isfile(model):
            values["ss_sd_model_hash"] = legacy_model_hash(model)
            values["ss_new_sd_model_hash"] = file_sha256(model)
        values["ss_sd_model_name"] = os.path.basename(os.path.normpath(model))
    vae = getattr(args, "vae", None)
    if vae:  # --vae, recorded as sd-scripts' train_network records it
        if os.path.isfile(vae):
            values["ss_vae_hash"] = legacy_model_hash(vae)
            values["ss_new_vae_hash"] = file_sha256(vae)
        values["ss_vae_name"] = os.path.basename(os.path.normpath(vae)) if os.path.exists(vae) else vae
    return {key: str(value) for key, value in values.items()}


def recorded_network_args(args: argparse.Namespace, network_args: dict[str, Any]) -> dict[str, Any] | None:
    """ss_network_args as sd-scripts records them: None without --network_args; else the key=value
    pairs plus the `dropout` it hands every module (--network_dropout, unless given there), except
    with --dim_from_weights, where it hands none (train_network.py:664-676, 1203-1204)."""
    if not getattr(args, "network_args", None):
        return None
    recorded = dict(network_args)
    if not getattr(args, "dim_from_weights", False):
        recorded.setdefault("dropout", getattr(args, "network_dropout", None))
    return recorded


def progress_metadata(base: dict[str, str], *, epoch: int, steps: int, finished: bool) -> dict[str, str]:
    """The keys that change each time a file is saved during training."""
    metadata = dict(base)
    metadata["ss_epoch"] = str(epoch)
    metadata["ss_steps"] = str(steps)
    if finished or "ss_training_finished_at" not in metadata:
        metadata["ss_training_finished_at"] = str(time.time())
    return metadata


def minimum_metadata(metadata: dict[str, str]) -> dict[str, str]:
    return {key: metadata[key] for key in MINIMUM_KEYS if key in metadata}


def modelspec_metadata(args: argparse.Namespace, facts: RunFacts, *, lora: bool) -> dict[str, str]:
    """The Stability `modelspec.*` keys (spec 1.0.1) sd-scripts writes beside ss_*."""
    v_param = bool(getattr(args, "v_parameterization", False))
    width, height = facts.resolution
    spec: dict[str, Any] = {
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": architecture(facts.family, v_param, lora),
        # sd-scripts: whole checkpoints (original layout) are Stability's; LoRAs as the family writes them.
        "modelspec.implementation": declaration(facts.family).implementation_url(lora),
        "modelspec.title": getattr(args, "metadata_title", None) or getattr(args, "output_name", None) or "model",
        "modelspec.resolution": f"{width}x{height}",
        "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(facts.training_started_at)),
        "modelspec.implementation_version": IMPLEMENTATION_VERSION,
    }
    if declaration(facts.family).records_prediction_type:
        spec["modelspec.prediction_type"] = "v" if v_param else "epsilon"
    min_t, max_t = getattr(args, "min_timestep", None), getattr(args, "max_timestep", None)
    if min_t is not None or max_t is not None:
        spec["modelspec.timestep_range"] = f"{min_t or 0},{max_t if max_t is not None else 1000}"
    clip_skip = getattr(args, "clip_skip", None)
    if clip_skip is not None:
        spec["modelspec.encoder_layer"] = str(clip_skip)
    for field_name in MODELSPEC_FIELDS:  # --metadata_<field> -> modelspec.<field>, as sd-scripts writes them
        value = getattr(args, f"metadata_{field_name}", None)
        if value is not None:
            spec[f"modelspec.{field_name}"] = thumbnail_data_url(value) if field_name == "thumbnail" else value
    return {key: str(value) for key, value in spec.items() if value is not None}


# The --metadata_* options besides the title (sd-scripts' sai_model_spec.add_model_spec_arguments).
MODELSPEC_FIELDS = ("author", "description", "license", "tags", "usage_hint", "thumbnail", "merged_from",
                    "trigger_phrase", "preprocessor", "is_negative_embedding")


def thumbnail_data_url(value: str) -> str | None:
    """--metadata_thumbnail: a data URL as given; an image file read into one (None, left out, when it cannot be
    read: preflight warned)."""
    if value.startswith("data:"):
        return value
    import base64
    import mimetypes

    try:
        data = Path(value).read_bytes()
    except OSError:
        return None
    mime = mimetypes.guess_type(value)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
