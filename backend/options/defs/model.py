"""Which base model to train and how to read it."""

from backend.messages import msg
from backend.options.schema import DDPM_COMMANDS, KNOWN_COMMANDS, V2_COMMANDS, Option, declare_all

declare_all(
    [
        Option(
            name="pretrained_model_name_or_path",
            kind="path",
            default=None,
            required=True,
            group="model",
            commands=KNOWN_COMMANDS,  # finetrainers' flag of the same name (train_video): a diffusers folder
            help=(
                "The base model to train: a single-file checkpoint (.safetensors or .ckpt) or a diffusers "
                "model folder (train_video: a diffusers folder). Nothing is downloaded. Required; e.g. "
                "/models/v1-5-pruned.safetensors or /models/sdxl-base (a diffusers folder)."
            ),
        ),
        Option(
            name="v2",
            kind="bool",
            default=False,
            commands=V2_COMMANDS,
            group="model",
            other_commands_reason=msg("options.other_commands.v2", "It reads the model as SD 2.x, which the SD "
                                      "1.x/2.x commands train; an SDXL, FLUX.1 or SD 3.5 model has no v2 (sd-scripts' "
                                      "SDXL scripts refuse it too)"),
            help=(
                "Read the model as Stable Diffusion 2.x (OpenCLIP text encoder). Turn it on for SD 2.0/2.1 "
                "checkpoints, off for SD 1.x. SDXL has its own commands and does not take it. Default: off."
            ),
        ),
        Option(
            name="v_parameterization",
            kind="bool",
            default=False,
            # Flow matching predicts a velocity of its own: sd-scripts' Flux scripts parse the flag and
            # ignore it, and accepting it would suggest v-prediction training; it is refused there.
            commands=DDPM_COMMANDS,
            group="model",
            help=(
                "Train with v-prediction (the model predicts velocity instead of noise). Turn it on for "
                "v-prediction models such as SD 2.x 768-v or v-pred SDXL fine-tunes; SD 1.x, SD 2.x base and "
                "SDXL base predict noise. A mismatch trains a broken model. Default: off."
            ),
        ),
        Option(
            name="tokenizer_cache_dir",
            kind="path",
            default=None,
            group="model",
            help=(
                "Folder that caches the tokenizer: it is loaded from there when present and saved there "
                "otherwise, so later runs need no network. Default: none (the tokenizer comes with the model)."
            ),
        ),
    ]
)
