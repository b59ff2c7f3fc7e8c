"""Optimizer, learning-rate schedule, noise, loss and sample-image options.

Implemented in backend/training: optimizers.py, schedulers.py, noise.py, loss.py and
sample_prompts.py. The choice lists repeat those modules' tables because this package must import
without torch; tests/training/test_option_defs.py keeps them equal.
"""

from backend.messages import msg
from backend.options.schema import Option, declare_all

SCHEDULERS = (
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial", "adafactor",
    "piecewise_constant", "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay",
)  # fmt: skip
SAMPLERS = (
    "ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a",
    "dpmsolver", "dpmsolver++", "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a",
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

_noise = [
    Option(
        name="noise_offset",
        kind="float",
        default=None,
        minimum=0,
        group="advanced",
        range_reason=msg(
            "options.range_reason.noise_offset",
            "a strength: sd-scripts multiplies symmetric noise by it, so a negative value acts as its "
            "absolute value, and with --adaptive_noise_scale it is clamped to 0"
        ),
        help=(
            "Adds a random per-channel constant of this strength to the training noise, so the model learns "
            "very dark and very bright images. Typical 0.05-0.1; default off. The strength is recorded in "
            "the LoRA metadata."
        ),
    ),
    Option(
        name="noise_offset_random_strength",
        kind="bool",
        default=False,
        group="advanced",
        help="Draw the noise offset strength uniformly from 0 to noise_offset at each step instead of using it as is.",
    ),
    Option(
        name="adaptive_noise_scale",
        kind="float",
        default=None,
        group="advanced",
        help=(
            "Adds this factor times the absolute mean of each latent channel to noise_offset (clamped at 0), "
            "so images far from mid-grey get a larger offset. Needs noise_offset; typical 0.01-0.05 or about "
            "noise_offset/10. Default off."
        ),
    ),
    Option(
        name="multires_noise_iterations",
        kind="int",
        default=None,
        minimum=0,
        group="advanced",
        range_reason=msg(
            "options.range_reason.multires_noise_iterations",
            "0 (or unset) turns multires noise off; sd-scripts runs no pyramid level for a negative count "
            "but still rescales the noise, never what a minus sign meant"
        ),
        help=(
            "Multi-resolution (pyramid) noise: adds this many levels of upsampled lower-resolution noise, "
            "which helps learn large-scale structure and contrast. Typical 6-10; default (or 0) off."
        ),
    ),
    Option(
        name="multires_noise_discount",
        kind="float",
        default=0.3,
        minimum=0,
        maximum=1,
        group="advanced",
        range_reason=msg(
            "options.range_reason.multires_noise_discount",
            "a decay factor per pyramid level: outside 0..1 the coarse levels outweigh the full-resolution "
            "noise (above 1) or alternate in sign (below 0); kohya_ss's default is 0.3"
        ),
        help=(
            "Weight factor per pyramid level (level i is weighted discount^i) for multires_noise_iterations; "
            "no effect without it. Default 0.3; 0.1-0.3 are common."
        ),
    ),
    Option(
        name="ip_noise_gamma",
        kind="float",
        default=None,
        minimum=0,
        group="advanced",
        range_reason=msg(
            "options.range_reason.ip_noise_gamma",
            "a strength: sd-scripts multiplies symmetric noise by it, so a negative value silently acts as "
            "its absolute value, never what a minus sign meant"
        ),
        help=(
            "Input perturbation: adds extra noise of this strength to the model's input only (the target "
            "stays the original noise), a regulariser against exposure bias. Typical 0.05-0.1; default off."
        ),
    ),
    Option(
        name="ip_noise_gamma_random_strength",
        kind="bool",
        default=False,
        group="advanced",
        help="Draw the input-perturbation strength uniformly from 0 to ip_noise_gamma at each step.",
    ),
    Option(
        name="min_timestep",
        kind="int",
        default=None,
        minimum=0,
        maximum=999,
        group="advanced",
        range_reason=msg(
            "options.range_reason.min_timestep",
            "negative timesteps index the scheduler's noise levels from the end (silently the wrong noise) "
            "and 1000 is past the last level (IndexError in sd-scripts)"
        ),
        help="Lowest diffusion timestep trained (0-999). Default 0. Raise it to skip fine detail (low noise).",
    ),
    Option(
        name="max_timestep",
        kind="int",
        default=None,
        minimum=1,
        maximum=1000,
        group="advanced",
        range_reason=msg(
            "options.range_reason.max_timestep",
            "sd-scripts draws timesteps up to this bound and indexes the scheduler's 1000 noise levels with "
            "them: above 1000 it fails with an IndexError, and at 0 every timestep is 0"
        ),
        help=(
            "Upper bound (exclusive) of the trained timesteps (1-1000). Default 1000. With min_timestep equal "
            "to it, every sample uses that one timestep."
        ),
    ),
    Option(
        name="zero_terminal_snr",
        kind="bool",
        default=False,
        group="advanced",
        help=(
            "Rescale the noise schedule so the last timestep is pure noise (zero terminal SNR, "
            "arXiv 2305.08891), which lets a model produce truly dark or bright images. Meant for "
            "v-prediction; with noise prediction training becomes unstable."
        ),
    ),
]

_loss = [
    Option(
        name="loss_type",
        kind="str",
        default="l2",
        choices=("l2", "l1", "huber", "smooth_l1"),
        group="advanced",
        help=(
            "Loss between prediction and target: l2 (mean squared error, default), l1, huber or smooth_l1 "
            "(pseudo-Huber: quadratic for small errors, linear for large ones, less hurt by outliers; the "
            "threshold follows huber_schedule and huber_c)."
        ),
    ),
    Option(
        name="huber_schedule",
        kind="str",
        default="snr",
        choices=("snr", "exponential", "constant"),
        group="advanced",
        help=(
            "Threshold of huber/smooth_l1 per timestep. snr (default): (1-c)/(1+sigma_t)^2 + c, near 1 at low "
            "noise and c at high noise; exponential: huber_scale*exp(ln(c)*t/1000); constant: "
            "huber_c*huber_scale."
        ),
    ),
    Option(
        name="huber_c",
        kind="float",
        default=0.1,
        minimum=0,
        group="advanced",
        range_reason=msg(
            "options.range_reason.huber_c",
            "a negative threshold makes the Huber loss negative (training would push the error up); "
            "sd-scripts' exponential schedule fails on it (math.log of a negative number)"
        ),
        help="The huber/smooth_l1 threshold parameter c (see huber_schedule). Default 0.1.",
    ),
    Option(
        name="huber_scale",
        kind="float",
        default=1.0,
        minimum=0,
        group="advanced",
        range_reason=msg(
            "options.range_reason.huber_scale",
            "it multiplies the Huber threshold: a negative scale makes the loss negative (training would "
            "push the error up)"
        ),
        help="Multiplies the huber threshold for the exponential and constant schedules (not snr). Default 1.0.",
    ),
    Option(
        name="min_snr_gamma",
        kind="float",
        default=None,
        minimum=0,
        group="advanced",
        range_reason=msg(
            "options.range_reason.min_snr_gamma",
            "0 turns it off; a negative gamma gives every timestep a negative loss weight (training would "
            "push the error up)"
        ),
        help=(
            "Min-SNR weighting (arXiv 2303.09556): multiplies each sample's loss by min(SNR, gamma)/SNR "
            "(v-prediction: min(SNR, gamma)/(SNR+1)), damping the easy low-noise timesteps; trains faster "
            "and steadier. 5 is the paper's value; default off."
        ),
    ),
    Option(
        name="scale_v_pred_loss_like_noise_pred",
        kind="bool",
        default=False,
        group="advanced",
        help=(
            "Multiply a v-prediction loss by SNR/(SNR+1) so timesteps weigh as with noise prediction. "
            "Needs v_parameterization."
        ),
    ),
    Option(
        name="v_pred_like_loss",
        kind="float",
        default=None,
        minimum=0,
        group="advanced",
        range_reason=msg(
            "options.range_reason.v_pred_like_loss",
            "it adds loss / SNR times this factor: a negative factor lowers the loss of the noisiest "
            "timesteps below zero (training would push their error up)"
        ),
        help=(
            "Adds a v-prediction-like term to a noise-prediction loss: loss + loss*(SNR+1)/SNR*value "
            "(SNR capped at 1000). Not with v_parameterization. Typical 0.1-0.5; default off."
        ),
    ),
    Option(
        name="debiased_estimation_loss",
        kind="bool",
        default=False,
        group="advanced",
        help=(
            "Debiased estimation (arXiv 2310.08442): weights each sample's loss by 1/sqrt(SNR) "
            "(v-prediction: 1/(SNR+1)), SNR capped at 1000. An alternative to min_snr_gamma."
        ),
    ),
]

_samples = [
    Option(
        name="sample_prompts",
        kind="path",
        default=None,
        group="samples",
        help=(
            "Prompt file for sample images: .txt (one prompt per line, # comments, options like "
            "--n negative --w 768 --h 512 --d seed --l cfg --s steps --ss sampler), .toml ([prompt] with "
            "[[prompt.subset]] entries) or .json (a list). Images go to <output_dir>/sample/. A bad line "
            "stops the run before training, naming the line."
        ),
    ),
    Option(
        name="sample_sampler",
        kind="str",
        default="ddim",
        choices=SAMPLERS,
        group="samples",
        help="Sampler for sample images unless a prompt sets --ss. Default ddim; euler_a and dpmsolver++ are popular.",
    ),
    Option(
        name="sample_every_n_steps",
        kind="int",
        default=None,
        group="samples",
        help="Generate sample images every N steps (ignored when sample_every_n_epochs is set). 0 or empty: off.",
    ),
    Option(
        name="sample_every_n_epochs",
        kind="int",
        default=None,
        group="samples",
        help="Generate sample images at the end of every N-th epoch. 0 or empty: off.",
    ),
    Option(
        name="sample_at_first",
        kind="bool",
        default=False,
        group="samples",
        help="Also generate sample images before the first step, to compare with the untrained model.",
    ),
]

declare_all(_optimizer + _schedule + _noise + _loss + _samples)
