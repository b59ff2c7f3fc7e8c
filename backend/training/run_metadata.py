"""The metadata of a run's files, gathered from the run (the keys themselves: metadata.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.data.summary import dataset_metadata
from backend.training.leco_data import LecoStepGroup
from backend.training.metadata import (
    RunFacts,
    minimum_metadata,
    modelspec_metadata,
    recorded_network_args,
    training_metadata,
)

if TYPE_CHECKING:
    from backend.training.run_setup import TrainingRun


def run_metadata(run: TrainingRun) -> dict[str, str]:
    """The ss_* and modelspec.* keys every file of this run carries (progress keys are added per save)."""
    args = run.args
    text_encoder_lr = getattr(args, "text_encoder_lr", None)  # LECO has none
    if isinstance(run.group, LecoStepGroup):  # no images: the prompt settings' keys
        dataset_keys, resolution = run.group.metadata_keys(), run.group.resolution
    else:
        first = run.group.datasets[0].spec
        # Flat keys for the folder convention / --in_json, ss_datasets for --dataset_config.
        dataset_keys = dataset_metadata(
            run.group, dataset_config=bool(args.dataset_config),
            total_batch_size=first.batch_size * run.accelerator.num_processes * args.gradient_accumulation_steps,
        )
        resolution = tuple(first.resolution)
    facts = RunFacts(
        family=run.components.family,
        session_id=run.session_id,
        training_started_at=run.started_at,
        num_train_images=run.group.num_train_images,
        num_reg_images=run.group.num_reg_images,
        num_validation_images=run.validation.num_images if run.validation else 0,
        num_batches_per_epoch=len(run.loader),
        num_epochs=run.num_epochs,
        optimizer_description=run.optimizer_setup.description,
        text_encoder_lr=text_encoder_lr[0] if isinstance(text_encoder_lr, list) and len(text_encoder_lr) == 1
        else text_encoder_lr,
        network_args=recorded_network_args(args, dict(run.method.network_args)),
        dataset_keys=dataset_keys,
        resolution=resolution,
    )
    metadata = training_metadata(args, facts)
    metadata["ss_max_train_steps"] = str(run.total_steps)
    if args.no_metadata:
        metadata = minimum_metadata(metadata)
    metadata.update(modelspec_metadata(args, facts, lora=run.method.lora))
    return run.method.file_metadata(metadata)
