"""Noise, loss and sample-image options, declared right after training.py (module order is the
schema's order, which the GUI shows).

Implemented in backend/objectives (noise.py, loss.py) and backend/training (sample_prompts.py). The
choice lists repeat those modules' tables because this package must import without torch;
tests/training/test_option_defs.py keeps them equal.
"""

from backend.messages import msg
from backend.options.schema import DDPM_COMMANDS, FLOW_MATCHING_COMMANDS, Option, commands_taking, declare_all

SAMPLERS = (
    "ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a",
    "dpmsolver", "dpmsolver++", "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a",
)  # fmt: skip

# DDPM-only options: sd-scripts' flow-matching scripts parse them and never read them, so their
# commands accept them too and warn (Option.ignored_on).
_DDPM_NOISE = {
    "commands": DDPM_COMMANDS,
    "ignored_on": FLOW_MATCHING_COMMANDS,
    "ignored_reason": msg(
        "options.ignored.ddpm_noise",
        "it shapes the noise or timesteps of DDPM training, and this command trains with flow matching, whose "
        "noise levels follow --timestep_sampling (SD 3.5: --weighting_scheme and --training_shift)",
    ),
}


def _timestep_bound(name: str) -> dict:
    """DDPM's, and the flow-matching families' naming it among their own (SD 3.5: sd3_train_utils draws its
    timesteps inside them); ignored by the other flow-matching commands, as sd-scripts' Flux sampler does."""
    own = commands_taking(name)
    return {**_DDPM_NOISE, "commands": DDPM_COMMANDS + own,
            "ignored_on": tuple(c for c in FLOW_MATCHING_COMMANDS if c not in own)}


_SNR_WEIGHTING = {
    "commands": DDPM_COMMANDS,
    "ignored_on": FLOW_MATCHING_COMMANDS,
    "ignored_reason": msg(
        "options.ignored.snr_weighting",
        "it weights the loss by the signal-to-noise ratio of a DDPM schedule, which flow matching does not have "
        "(its loss weighting is --weighting_scheme)",
    ),
}

_noise = [
    Option(
        name="noise_offset",
        **_DDPM_NOISE,
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
        **_DDPM_NOISE,
        kind="bool",
        default=False,
        group="advanced",
        help="Draw the noise offset strength uniformly from 0 to noise_offset at each step instead of using it as is.",
    ),
    Option(
        name="adaptive_noise_scale",
        **_DDPM_NOISE,
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
        **_DDPM_NOISE,
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
        **_DDPM_NOISE,
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
        **_timestep_bound("min_timestep"),
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
        **_timestep_bound("max_timestep"),
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
        **_DDPM_NOISE,
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
        **_SNR_WEIGHTING,
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
        **_SNR_WEIGHTING,
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
        **_SNR_WEIGHTING,
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
        **_SNR_WEIGHTING,
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

declare_all(_noise + _loss + _samples)
