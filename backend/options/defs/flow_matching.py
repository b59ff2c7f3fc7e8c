"""Flow-matching options (sd-scripts' flux_train_utils / train_util.add_dit_training_arguments flags).

Every field of backend/objectives/flow_matching.py's `FlowMatchingConfig` is an option here, with
sd-scripts' name, type, default and choices, for the commands of the families whose `objective` is
"flow_matching". The choice lists repeat that module's tables because this package must import
without torch; tests/options/test_flow_matching_options.py keeps them equal. Checks across options
(discrete_flow_shift > 0, mode_scale's range under weighting_scheme mode) are
`FlowMatchingConfig.validate`'s, run by preflight.
"""

from backend.messages import msg
from backend.options.schema import FLOW_MATCHING_COMMANDS, Option, declare_all
from backend.options.sd_scripts_flags import sd_scripts_flags


def _taking(name: str) -> tuple[str, ...]:
    """The flow-matching commands whose sd-scripts script has flag `name`: the timestep sampling and prediction
    type flags are add_flux_train_arguments' (sd3_train_network samples as SD3 does: --training_shift)."""
    return tuple(command for command in FLOW_MATCHING_COMMANDS if name in sd_scripts_flags(command))

TIMESTEP_SAMPLINGS = ("sigma", "uniform", "sigmoid", "shift", "flux_shift")
MODEL_PREDICTION_TYPES = ("raw", "additive", "sigma_scaled")
WEIGHTING_SCHEMES = ("sigma_sqrt", "logit_normal", "mode", "cosmap", "none", "uniform")

declare_all(
    [
        Option(
            "timestep_sampling", "str", "sigma", choices=TIMESTEP_SAMPLINGS, group="advanced",
            commands=_taking("timestep_sampling"),
            help="How each sample's noise level (sigma, 0 = clean, 1 = pure noise) is drawn. sigma (default): "
            "from the scheduler's table shifted by discrete_flow_shift, weighted as weighting_scheme says; "
            "uniform: evenly in 0..1; sigmoid: sigmoid(sigmoid_scale x normal noise), centred on mid noise; "
            "shift: sigmoid, then shifted by discrete_flow_shift towards high noise; flux_shift: sigmoid, then "
            "shifted by the image size as FLUX.1 itself was trained. Guides for FLUX.1 LoRAs often use "
            "shift or flux_shift.",
        ),
        Option(
            "sigmoid_scale", "float", 1.0, group="advanced", commands=_taking("sigmoid_scale"),
            help="Spread of the sigmoid, shift and flux_shift timestep samplings: the normal noise is multiplied "
            "by it before the sigmoid, so larger values train more often at very low and very high noise. "
            "Default 1.0.",
        ),
        Option(
            "discrete_flow_shift", "float", 3.0, group="advanced", commands=_taking("discrete_flow_shift"),
            help="Shift of the noise levels towards high noise (sigma' = s x sigma / (1 + (s - 1) x sigma)) for the "
            "sigma and shift timestep samplings; 1 means no shift. Must be positive. Default 3.0 (sd-scripts'); "
            "3.1582 is the value FLUX.1's own scheduler uses.",
        ),
        Option(
            "model_prediction_type", "str", "sigma_scaled", choices=MODEL_PREDICTION_TYPES, group="advanced",
            commands=_taking("model_prediction_type"),
            help="How the model's output is read. raw: as the velocity (noise - latents) itself, which is what "
            "FLUX.1 predicts; additive: added to the noisy input; sigma_scaled (default, sd-scripts'): turned "
            "into an estimate of the clean latents (noisy input - sigma x output) and the loss weighted by "
            "weighting_scheme. Guides for FLUX.1 LoRAs usually set raw.",
        ),
        Option(
            "weighting_scheme", "str", "uniform", choices=WEIGHTING_SCHEMES, group="advanced",
            commands=FLOW_MATCHING_COMMANDS,
            help="Timestep density for the sigma timestep sampling (logit_normal: logit_mean/logit_std; mode: "
            "mode_scale) and, with model_prediction_type sigma_scaled, the loss weight per sample (sigma_sqrt: "
            "1/sigma^2; cosmap). uniform (default) and none are the same: no weighting.",
        ),
        Option(
            "logit_mean", "float", 0.0, group="advanced", commands=FLOW_MATCHING_COMMANDS,
            help="Mean of the logit-normal timestep density (weighting_scheme logit_normal): above 0 trains "
            "more at high noise. Default 0.0.",
        ),
        Option(
            "logit_std", "float", 1.0, minimum=0, group="advanced", commands=FLOW_MATCHING_COMMANDS,
            range_reason=msg(
                "options.range_reason.logit_std",
                "a standard deviation: sd-scripts multiplies symmetric normal noise by it, so a negative value "
                "silently acts as its absolute value, never what a minus sign meant"
            ),
            help="Standard deviation of the logit-normal timestep density (weighting_scheme logit_normal): "
            "smaller values concentrate training around logit_mean. Default 1.0.",
        ),
        Option(
            "mode_scale", "float", 1.29, group="advanced", commands=FLOW_MATCHING_COMMANDS,
            help="Scale of the mode timestep density (weighting_scheme mode, the SD3 paper's): positive values "
            "train more at mid noise; it must lie between -1 and 1.7519. Default 1.29.",
        ),
    ]
)
