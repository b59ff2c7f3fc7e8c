"""Optimizer and learning-rate schedule options (noise, loss and samples: training_noise.py).

Implemented in backend/training: optimizers.py and schedulers.py. The choice lists repeat those
modules' tables because this package must import without torch; tests/training/test_option_defs.py
keeps them equal.
"""

from backend.messages import msg
from backend.options.schema import KNOWN_COMMANDS, Option, declare_all

SCHEDULERS = (
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial", "adafactor",
    "piecewise_constant", "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay",
)  # fmt: skip

_optimizer = [
    Option(
        name="optimizer_type",
        kind="str",
        default="AdamW",
        group="basic",
        help=(
            "The optimizer. Built in: AdamW (default; fused kernels), AdamW8bit, PagedAdamW, PagedAdamW8bit, "
            "PagedAdamW32bit, Lion8bit, PagedLion8bit (these need bitsandbytes; 8-bit state saves optimizer "
            "memory, Paged* behaves like unpaged on CPU), Lion (lion-pytorch), SGDNesterov, SGDNesterov8bit, "
            "Adafactor, Prodigy (prodigyopt), DAdaptation/DAdaptAdam/DAdaptAdaGrad/DAdaptAdan/DAdaptAdanIP/"
            "DAdaptLion/DAdaptSGD (dadaptation), RAdamScheduleFree/AdamWScheduleFree/SGDScheduleFree "
            "(schedulefree). Also any torch.optim class name or a dotted class path such as "
            "bitsandbytes.optim.AdEMAMix8bit. Names are case-insensitive; a missing package is reported "
            "before the models load. Prodigy and D-Adaptation want learning_rate around 1.0."
        ),
    ),
    Option(
        name="use_8bit_adam",
        kind="bool",
        default=False,
        group="advanced",
        help="Old spelling of optimizer_type=AdamW8bit (needs bitsandbytes); an error if another optimizer_type is set.",
    ),
    Option(
        name="use_lion_optimizer",
        kind="bool",
        default=False,
        group="advanced",
        help="Old spelling of optimizer_type=Lion (needs lion-pytorch); an error if another optimizer_type is set.",
    ),
    Option(
        name="learning_rate",
        kind="float",
        default=2e-6,
        minimum=0,
        group="basic",
        range_reason=msg(
            "options.range_reason.learning_rate",
            "PyTorch's optimizers refuse a negative learning rate (ValueError: Invalid learning rate), so "
            "sd-scripts fails at the optimizer"
        ),
        help=(
            "Base learning rate; unet_lr / text_encoder_lr override it per part where given. Default 2e-6 "
            "(sd-scripts' value, meant for full fine-tuning); LoRA usually uses 1e-4 to 1e-3, Prodigy and "
            "D-Adaptation 1.0. With Adafactor's relative_step it only sets the starting value."
        ),
    ),
    Option(
        name="max_grad_norm",
        commands=KNOWN_COMMANDS,
        kind="float",
        default=1.0,
        minimum=0,
        group="advanced",
        range_reason=msg(
            "options.range_reason.max_grad_norm",
            "0 turns clipping off; a negative norm makes torch's clip_grad_norm_ multiply every gradient by "
            "a negative factor, so training would run backwards"
        ),
        help="Clip the gradient norm to this value before each optimizer step; 0 turns clipping off. Default 1.0.",
    ),
    Option(
        name="optimizer_args",
        kind="str_list",
        default=None,
        group="basic",
        help=(
            'Extra optimizer arguments as key=value items, e.g. "weight_decay=0.01" "betas=0.9,0.999" '
            '"decouple=True". Values are Python literals (0.9,0.999 is a tuple; true/false in any case are '
            "booleans); anything else is passed as text. An argument the optimizer does not know stops the "
            "run with its name. Adafactor defaults to relative_step=True; SGDNesterov to momentum=0.9."
        ),
    ),
]

_schedule = [
    Option(
        name="lr_scheduler",
        commands=KNOWN_COMMANDS,
        kind="str",
        default="constant",
        choices=SCHEDULERS,
        group="basic",
        range_reason=msg(
            "options.range_reason.lr_scheduler",
            "sd-scripts' parser takes any text, but its scheduler factory refuses names outside "
            "transformers' SchedulerType, diffusers' piecewise_constant and adafactor (ValueError); "
            "reduce_lr_on_plateau fails there too (it needs a metric). The adafactor:<lr> spelling "
            "sd-scripts builds internally is not taken: the initial rate is --learning_rate"
        ),
        help=(
            "How the learning rate changes over the run. constant (default), constant_with_warmup, linear "
            "(to 0), cosine (half cosine to 0), cosine_with_restarts (lr_scheduler_num_cycles), polynomial "
            "(lr_scheduler_power, to 1e-7), adafactor (with Adafactor's relative_step, chosen automatically "
            "then), piecewise_constant (lr_scheduler_args step_rules=1:100,0.1), inverse_sqrt, "
            "cosine_with_min_lr (lr_scheduler_min_lr_ratio), warmup_stable_decay (lr_decay_steps)."
        ),
    ),
    Option(
        name="lr_warmup_steps",
        commands=KNOWN_COMMANDS,
        kind="int_or_float",
        default=0,
        minimum=0,
        group="basic",
        range_reason=msg(
            "options.range_reason.lr_warmup_steps",
            "a negative warmup does not mean anything: transformers' schedules then shift their curve "
            "(cosine starts part-way down), and sd-scripts' constant schedule refuses any non-zero warmup"
        ),
        help=(
            "Steps of linear warmup from 0 to the learning rate: a count (e.g. 100) or, below 1, a ratio of "
            "the total steps (e.g. 0.05). Default 0. Not allowed with constant (use constant_with_warmup), "
            "adafactor or lr_scheduler_type."
        ),
    ),
    Option(
        name="lr_decay_steps",
        kind="int_or_float",
        default=0,
        minimum=0,
        group="advanced",
        range_reason=msg(
            "options.range_reason.lr_decay_steps",
            "a negative decay length does not mean anything: warmup_stable_decay would then stretch its "
            "stable phase beyond the run"
        ),
        help="Decay length of warmup_stable_decay: a count, or below 1 a ratio of the total steps. Default 0.",
    ),
    Option(
        name="lr_scheduler_num_cycles",
        kind="int",
        default=1,
        minimum=1,
        group="advanced",
        range_reason=msg(
            "options.range_reason.lr_scheduler_num_cycles",
            "0 turns transformers' cosine_with_restarts into a constant rate and a negative count runs the "
            "cosine backwards; 1 or more restarts are the meaningful values"
        ),
        help=(
            "Number of cosine cycles (hard restarts) of cosine_with_restarts; also scales cosine_with_min_lr "
            "and warmup_stable_decay. Default 1."
        ),
    ),
    Option(
        name="lr_scheduler_power",
        kind="float",
        default=1.0,
        group="advanced",
        help="Exponent of the polynomial scheduler's decay: 1 is linear, 2 falls faster at first. Default 1.",
    ),
    Option(
        name="lr_scheduler_timescale",
        kind="int",
        default=None,
        minimum=1,
        group="advanced",
        range_reason=msg(
            "options.range_reason.lr_scheduler_timescale",
            "inverse_sqrt divides by it (ZeroDivisionError at 0) and takes its square root (math domain "
            "error below 0)"
        ),
        help="Timescale of the inverse_sqrt scheduler. Default: lr_warmup_steps.",
    ),
    Option(
        name="lr_scheduler_min_lr_ratio",
        kind="float",
        default=None,
        minimum=0,
        maximum=1,
        group="advanced",
        range_reason=msg(
            "options.range_reason.lr_scheduler_min_lr_ratio",
            "a fraction of the learning rate: below 0 the rate turns negative at the end of the schedule "
            "(training would push the loss up), above 1 the 'minimum' exceeds --learning_rate"
        ),
        help=(
            "Lowest learning rate as a fraction of the initial one, for cosine_with_min_lr (required there, "
            "e.g. 0.1) and warmup_stable_decay (default 0)."
        ),
    ),
    Option(
        name="lr_scheduler_type",
        kind="str",
        default=None,
        group="advanced",
        help=(
            "Use any scheduler class instead of lr_scheduler: a torch.optim.lr_scheduler name (e.g. "
            "CosineAnnealingLR) or a dotted class path; its arguments come from lr_scheduler_args "
            '(e.g. "T_max=1000"). The scheduler steps once per optimizer step.'
        ),
    ),
    Option(
        name="lr_scheduler_args",
        kind="str_list",
        default=None,
        group="advanced",
        help='Extra scheduler arguments as key=value items (Python literals), e.g. "T_max=1000" "eta_min=1e-6".',
    ),
]

declare_all(_optimizer + _schedule)
