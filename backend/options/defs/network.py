"""Network (LoRA) options: which network module, its rank/alpha/args, and what it trains.

Implemented by backend/networks (and the training loop for learning rates and weight norms).
Names, defaults and semantics are sd-scripts' train_network.py.
"""

from backend.messages import msg
from backend.options.schema import LORA_COMMANDS, Option, declare_all

declare_all(
    [
        Option(
            "network_module",
            "str",
            "networks.lora",
            group="network",
            commands=LORA_COMMANDS,
            help="Which network to train. networks.lora: LoRA on attention/MLP layers (LoCon with "
            "network_args conv_dim=...); networks.dylora: DyLoRA (usable at any rank that is a multiple of "
            "unit); lycoris.kohya: LyCORIS algorithms chosen with network_args algo=locon|loha|lokr|ia3|"
            "dylora|glora|diag-oft|boft|full. Any other importable module with create_network also works.",
        ),
        Option(
            "network_dim",
            "int",
            None,
            group="network",
            commands=LORA_COMMANDS,
            minimum=1,
            range_reason=msg(
                "options.range_reason.network_dim",
                "sd-scripts' LoRA divides alpha by the rank (ZeroDivisionError at 0), and a layer cannot "
                "have a negative size"
            ),
            help="Rank of the LoRA matrices (empty = 4). Higher captures more detail and makes bigger files; "
            "typical 4-32 for characters and styles, 64-128 for complex concepts. For LoKr it is the rank of "
            "the factored parts (very large values such as 10000 mean full matrices).",
        ),
        Option(
            "network_alpha",
            "float",
            1.0,
            group="network",
            commands=LORA_COMMANDS,
            help="Scales the LoRA output by alpha/rank, so the effective learning rate shrinks as alpha drops "
            "below the rank. Default 1; common choices are 1, half the rank, or equal to the rank (no "
            "scaling, as in old LoRA versions). 0 means alpha = rank.",
        ),
        Option(
            "network_dropout",
            "float",
            None,
            group="network",
            commands=LORA_COMMANDS,
            minimum=0,
            maximum=1,
            range_reason=msg(
                "options.range_reason.network_dropout",
                "a probability: PyTorch's dropout refuses values outside 0..1 (ValueError), so sd-scripts "
                "fails at the first step"
            ),
            help="Neuron dropout on the LoRA's rank-dimension activations during training (empty or 0 = off, "
            "1 drops everything). 0.1-0.3 can reduce overfitting. rank_dropout and module_dropout go in "
            "network_args.",
        ),
        Option(
            "network_args",
            "str_list",
            None,
            group="network",
            commands=LORA_COMMANDS,
            help="Extra key=value settings for the network module, e.g. conv_dim=8 conv_alpha=1 (LoCon), "
            "rank_dropout=0.1, module_dropout=0.1, block_dims=..., down_lr_weight=sine, "
            "loraplus_lr_ratio=16; for lycoris.kohya algo=lokr preset=attn-mlp factor=8 .... "
            "networks.lora/dylora reject unknown keys; for other modules keys they do not read are warned "
            "about.",
        ),
        Option(
            "network_weights",
            "path",
            None,
            group="network",
            commands=LORA_COMMANDS,
            help="A LoRA file to start from (continue training). Its ranks must match network_dim/conv_dim "
            "unless --dim_from_weights is set.",
        ),
        Option(
            "dim_from_weights",
            "bool",
            False,
            group="network",
            commands=LORA_COMMANDS,
            help="Take the rank, alpha and layer set of every module from --network_weights instead of "
            "network_dim/network_alpha/conv_dim.",
        ),
        Option(
            "network_train_unet_only",
            "bool",
            False,
            group="network",
            commands=LORA_COMMANDS,
            help="Train only the U-Net part of the network (no text encoder LoRA in the file). Usual for "
            "SDXL, and required when text encoder outputs are cached.",
        ),
        Option(
            "network_train_text_encoder_only",
            "bool",
            False,
            group="network",
            commands=LORA_COMMANDS,
            help="Train only the text encoder part of the network (no U-Net LoRA in the file).",
        ),
        Option(
            "unet_lr",
            "float",
            None,
            group="network",
            commands=LORA_COMMANDS,
            minimum=0,
            range_reason=msg(
                "options.range_reason.learning_rate_te",
                "PyTorch's optimizers refuse a negative learning rate (ValueError: Invalid learning rate)"
            ),
            help="Learning rate for the U-Net LoRA (empty = --learning_rate). Typical 1e-4 with AdamW; "
            "1.0 with Prodigy/DAdaptation.",
        ),
        Option(
            "text_encoder_lr",
            "float_list",
            None,
            group="network",
            commands=LORA_COMMANDS,
            help="Learning rate for the text encoder LoRA (empty = --learning_rate); two values for SDXL's "
            "two text encoders, one value applies to both. Often lower than unet_lr, e.g. 5e-5; 0 freezes "
            "that part.",
        ),
        Option(
            "scale_weight_norms",
            "float",
            None,
            group="network",
            commands=LORA_COMMANDS,
            minimum=0,
            range_reason=msg(
                "options.range_reason.scale_weight_norms",
                "0 turns it off; a negative maximum norm makes every weight's rescaling factor negative, "
                "flipping the network's weights at every step"
            ),
            help="After each step, scale down every LoRA module whose weight delta norm exceeds this value "
            "(max-norm regularization against overfitting and exploding weights). Empty = off; 1 is a good "
            "start.",
        ),
        Option(
            "training_comment",
            "str",
            None,
            group="network",
            commands=LORA_COMMANDS,
            help="Free text stored in the LoRA file's metadata (ss_training_comment), e.g. trigger words.",
        ),
        Option(
            "base_weights", "str_list", None, group="network", commands=LORA_COMMANDS,
            help="Network files (LoRA/LyCORIS, read by --network_module) merged into the base model before "
            "training, as sd-scripts' --base_weights: the new network learns on top of them, and the saved file "
            "holds the new network only (use it together with these). Each at --base_weights_multiplier.",
        ),
        Option(
            "base_weights_multiplier", "float_list", None, group="network", commands=LORA_COMMANDS,
            help="The strength of each --base_weights file when merged, in the same order (e.g. 1.0 0.5); a file "
            "without a value here is merged at 1.0.",
        ),
    ]
)
