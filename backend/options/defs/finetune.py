"""Full fine-tuning options (fine_tune, train_db, sdxl_train, ...): what is trained, at which rates, EMA, file
format.

Names and semantics are sd-scripts' (fine_tune.py, train_db.py, sdxl_train.py) except the EMA options, which
sd-scripts does not have; they follow OneTrainer's EMA (an exponential moving average of the
trained weights, with a warm-up so short runs are not dominated by the base weights).
"""

from backend.messages import msg
from backend.options.schema import (
    FINETUNE_COMMANDS,
    LORA_COMMANDS,
    TEXTUAL_INVERSION_COMMANDS,
    Option,
    declare_all,
    declare_derived,
)

# train_db has no --train_text_encoder: its text encoder trains unless --stop_text_encoder_training is negative.
_OWN_TE_SWITCH = tuple(command for command in FINETUNE_COMMANDS if command != "train_db")

declare_all(
    [
        Option(
            "train_text_encoder", "bool", False, group="basic", commands=_OWN_TE_SWITCH,
            other_commands_reason=msg("options.other_commands.train_text_encoder", "train_db trains the text "
                                      "encoder without it; --stop_text_encoder_training -1 keeps it frozen"),
            help="Also train the text encoder(s), not only the U-Net. Costs memory (SDXL: both encoders, about "
            "+3 GB of weights plus optimizer state) and overfits quickly; use a lower rate with "
            "--learning_rate_te (SD) or --learning_rate_te1/--learning_rate_te2 (SDXL). Off: the text "
            "encoders are saved exactly as in the base model. Cannot be combined with "
            "--cache_text_encoder_outputs.",
        ),
        Option(
            "learning_rate_te", "float", None, minimum=0, group="basic", commands=("fine_tune", "train_db"),
            range_reason=msg(
                "options.range_reason.learning_rate_te",
                "PyTorch's optimizers refuse a negative learning rate (ValueError: Invalid learning rate)"
            ),
            help="Learning rate of the text encoder with --train_text_encoder (train_db: while it trains, see "
            "--stop_text_encoder_training). Default: --learning_rate. 0 keeps the text encoder frozen. Typical: a "
            "half or a tenth of the U-Net's rate.",
        ),
        Option(
            "stop_text_encoder_training", "int", None, group="basic", commands=("train_db",),
            help="DreamBooth trains the text encoder with the U-Net (as sd-scripts' train_db does); from this "
            "optimizer step on it stays frozen. -1 (any negative, as in sd-scripts): never train it (the U-Net "
            "only). Empty: train it to the end. "
            "Stopping early (e.g. at a third of the steps) keeps the class word from drifting.",
        ),
        Option(
            "no_token_padding", "bool", False, group="advanced", commands=("train_db",),
            help="Accepted for sd-scripts configs and changes nothing, as in sd-scripts since its 2024 rewrite "
            "of tokenization (the code that read it is commented out there): captions are padded to 77 tokens "
            "as at inference. The log says so when it is set.",
        ),
        Option(
            "learning_rate_te1", "float", None, minimum=0, group="basic", commands=("sdxl_train",),
            range_reason=msg(
                "options.range_reason.learning_rate_te",
                "PyTorch's optimizers refuse a negative learning rate (ValueError: Invalid learning rate)"
            ),
            help="Learning rate of SDXL's first text encoder (CLIP ViT-L) with --train_text_encoder. Default: "
            "--learning_rate. 0 keeps it frozen.",
        ),
        Option(
            "learning_rate_te2", "float", None, minimum=0, group="basic", commands=("sdxl_train",),
            range_reason=msg(
                "options.range_reason.learning_rate_te",
                "PyTorch's optimizers refuse a negative learning rate (ValueError: Invalid learning rate)"
            ),
            help="Learning rate of SDXL's second text encoder (OpenCLIP bigG) with --train_text_encoder. "
            "Default: --learning_rate. 0 keeps it frozen.",
        ),
        Option(
            "block_lr", "str", None, group="basic", commands=("sdxl_train",),
            help="A learning rate for each of the SDXL U-Net's 23 blocks, comma-separated, replacing "
            "--learning_rate for the U-Net: 0 = time/label embedding, 1-9 = input blocks, 10-12 = middle block, "
            "13-21 = output blocks, 22 = out (sd-scripts' numbering). 0 freezes a block. The U-Net is trained "
            "only when --learning_rate is above 0, as in sd-scripts.",
        ),
        Option(
            "diffusers_xformers", "bool", False, group="advanced", commands=_OWN_TE_SWITCH,
            help="Accepted for sd-scripts configs and changes nothing: attention always runs through PyTorch's "
            "scaled_dot_product_attention (SDPA), which is as fast as xformers on torch 2.x; xformers is not "
            "installed. The log says so when the flag is set.",
        ),
        Option(
            "use_safetensors", "bool", False, group="saving", commands=FINETUNE_COMMANDS,
            help="Write safetensors even where --save_model_as says otherwise: ckpt becomes safetensors, "
            "diffusers becomes diffusers_safetensors (as in sd-scripts).",
        ),
        Option(
            "fused_backward_pass", "bool", False, group="advanced", commands=FINETUNE_COMMANDS,
            # sd-scripts' train_network parses it (its optimizer factory then asserts Adafactor and no gradient
            # accumulation) but steps the network's optimizer after the backward pass as always.
            # Its textual inversion scripts parse it and never read it.
            ignored_on=LORA_COMMANDS + TEXTUAL_INVERSION_COMMANDS,
            ignored_reason=msg("options.ignored.fused_backward_pass_network", "a network or an embedding is stepped "
                               "after the backward pass, as in sd-scripts' train_network and textual inversion "
                               "scripts (their gradients are small)"),
            help="Step the optimizer for each weight as soon as its gradient is computed and free that gradient, "
            "instead of holding every gradient until the backward pass ends: saves memory the size of the "
            "trained weights in float32 (SDXL's U-Net: about 10 GB). For Adafactor, AdamW and SGDNesterov; "
            "needs --gradient_accumulation_steps 1 and no fp16; --max_grad_norm then clips each weight's "
            "gradient on its own.",
        ),
        # sd-scripts gives each block (flux_train, sd3_train) or each of N groups (sdxl_train too) an optimizer
        # of its own, stepped when the block's gradients are complete. For the optimizers that update each
        # weight from its own gradient and state alone, that is the per-weight step of --fused_backward_pass,
        # which is what runs (backend/training/fused_backward.py: FusedStepConfig).
        Option(
            "blockwise_fused_optimizers", "bool", False, group="advanced", commands=FINETUNE_COMMANDS,
            help="sd-scripts' per-block fused optimizers (flux_train, sd3_train): each block's weights are stepped as "
            "soon as the backward pass has computed their gradients, which saves the memory of holding every "
            "gradient. Here this is --fused_backward_pass (each weight stepped on its own), the same update for "
            "Adafactor, AdamW and SGDNesterov; other optimizers are refused. Needs --gradient_accumulation_steps 1.",
        ),
        Option(
            "fused_optimizer_groups", "int", None, minimum=0, group="advanced", commands=FINETUNE_COMMANDS,
            range_reason=msg("options.range_reason.fused_optimizer_groups", "a number of optimizer groups; 0 or "
                             "empty turns it off"),
            help="sd-scripts' --fused_optimizer_groups N (sdxl_train, flux_train, sd3_train): the weights split into "
            "N groups, each stepped when its gradients are complete. Here any N > 0 means --fused_backward_pass "
            "(each weight stepped on its own): the same update for Adafactor, AdamW and SGDNesterov, with less "
            "memory than N groups; other optimizers are refused. Empty or 0: off.",
        ),
        Option(
            "ema", "bool", False, group="advanced", commands=FINETUNE_COMMANDS,
            help="Keep an exponential moving average (EMA) of the trained weights and save it (see --ema_save). "
            "EMA weights are smoother and often generalise better than the last step's. Costs one fp32 copy of "
            "the trained weights in the training device's memory (SDXL U-Net: about 10 GB). Samples during "
            "training show the raw weights. Saved states include the EMA, so --resume continues it exactly.",
        ),
        Option(
            "ema_decay", "float", 0.999, minimum=0.0, maximum=1.0, group="advanced", commands=FINETUNE_COMMANDS,
            help="EMA decay per optimizer step: ema = d * ema + (1 - d) * weights, with "
            "d = min(ema_decay, (1 + n) / (10 + n)) at the n-th update (a warm-up, as OneTrainer and diffusers "
            "do). 0.999 averages over about the last 1000 steps; 0.9999 suits runs of tens of thousands of "
            "steps.",
        ),
        Option(
            "ema_save", "str", "instead", choices=("instead", "beside"), group="advanced",
            commands=FINETUNE_COMMANDS,
            help="With --ema, what each save writes: instead (default) = the model file holds the EMA weights; "
            "beside = the model file holds the raw trained weights and '<name>-ema' (same format) the EMA "
            "weights.",
        ),
    ]
)


def _train_db_text_encoder(values: dict[str, object]) -> dict[str, object]:
    """sd-scripts' train_db: `stop_text_encoder_training is None or >= 0` trains the text encoder."""
    stop = values.get("stop_text_encoder_training")
    return {"train_text_encoder": stop is None or int(stop) >= 0}  # type: ignore[call-overload]


declare_derived(("train_db",), _train_db_text_encoder)
