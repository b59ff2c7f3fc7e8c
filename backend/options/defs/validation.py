"""Validation loss on images held out of training (sd-scripts' train_network.py, 2025).

sd-scripts validates LoRA runs only; the fine-tune commands take the same options here (a fine-tune
overfits as readily, and the loop and the split are the same code).

Implemented in backend/data/split.py (which images are held out) and backend/training/validation.py
(the loss and when it runs).
"""

from backend.messages import msg
from backend.options.schema import ALL_COMMANDS, Option, declare_all

declare_all(
    [
        Option(
            name="validation_split",
            kind="float",
            default=0.0,
            commands=ALL_COMMANDS,
            group="advanced",
            help=(
                "Fraction of the training images held out for a validation loss and never trained on, e.g. 0.1. "
                "Each folder (subset) gives round(images x fraction) of its images, picked by validation_seed; "
                "regularization images are never held out. Held-out images count once (no repeats). The "
                "validation loss is the training loss of those images at 4 fixed timesteps (200, 400, 600 and "
                "800 with the default timestep range) with fixed noise, so curves compare across runs and "
                "resumes. Must be at least 0 and below 1; a split that holds out no image or every image is an "
                "error. A dataset config may set it per dataset. Default 0 (no validation)."
            ),
        ),
        Option(
            name="validation_seed",
            kind="int",
            default=None,
            commands=ALL_COMMANDS,
            group="advanced",
            help=(
                "Seed that picks the held-out validation images and fixes the validation noise; keep it when "
                "comparing runs with different training seeds. A dataset config may set it per dataset. "
                "Default: the training seed."
            ),
        ),
        Option(
            name="validate_every_n_steps",
            kind="int",
            default=None,
            minimum=1,
            commands=ALL_COMMANDS,
            group="advanced",
            range_reason=msg(
                "options.range_reason.validate_every_n_steps",
                "sd-scripts tests step % N, so 0 fails with ZeroDivisionError; leave it unset to validate "
                "only at epoch ends"
            ),
            help=(
                "Also compute the validation loss every N optimizer steps (needs validation_split). "
                "Default: none (only at the end of epochs)."
            ),
        ),
        Option(
            name="validate_every_n_epochs",
            kind="int",
            default=None,
            minimum=1,
            commands=ALL_COMMANDS,
            group="advanced",
            range_reason=msg(
                "options.range_reason.validate_every_n_epochs",
                "sd-scripts tests (epoch + 1) % N, so 0 fails with ZeroDivisionError; leave it unset to "
                "validate at every epoch's end"
            ),
            help=(
                "Compute the validation loss at the end of every N-th epoch (needs validation_split). "
                "Default: none, which means at the end of every epoch, as in sd-scripts."
            ),
        ),
        Option(
            name="max_validation_steps",
            kind="int",
            default=None,
            minimum=1,
            commands=ALL_COMMANDS,
            group="advanced",
            range_reason=msg(
                "options.range_reason.max_validation_steps",
                "0 validates on no batch at all; leave the validate_every_n_* options unset to turn "
                "validation off"
            ),
            help=(
                "Use at most this many validation batches in each validation pass (always the same ones), to "
                "keep passes short on a large validation set. Default: all of them."
            ),
        ),
    ]
)
