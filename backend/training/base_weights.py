"""sd-scripts' --base_weights: network files merged into the frozen base model before training.

As in sd-scripts' train_network: each file is read by the run's --network_module (`create_network_from_weights`
for inference, so no dropout) and its deltas are added into the U-Net's and text encoders' weights
(`merge_to`) at its --base_weights_multiplier (1.0 where none is given), in the order given. It happens where
the model was loaded (the CPU, or the GPU with --lowram) and before the frozen model is placed, so the deltas
land in the loaded precision before --fp8_base stores weights in float8. No hooks stay: the network trained
afterwards learns on top of the merged model, and its file holds only itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from backend.messages import msg
from backend.models.components import Components
from backend.networks.loader import create_network_from_weights, load_network_module
from backend.training.network_method import unet_file_names
from backend.training.option_slice import OptionSlice

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseWeightsConfig(OptionSlice):
    network_module: str = "networks.lora"
    base_weights: list[str] | None = None  # the LoRA commands' options; none on the fine-tune commands
    base_weights_multiplier: list[float] | None = None

    def multiplier(self, index: int) -> float:
        """sd-scripts: the index-th multiplier, 1.0 where the list is missing or shorter."""
        given = self.base_weights_multiplier or []
        return float(given[index]) if index < len(given) else 1.0


def merge_base_weights(config: BaseWeightsConfig, components: Components) -> None:
    """Add every --base_weights network into `components`' weights, in their dtype and on their device."""
    if not config.base_weights:
        return
    module = load_network_module(config.network_module)
    encoders = components.text_encoders
    te_arg = encoders if len(encoders) > 1 else encoders[0]
    names = unet_file_names(components)
    for index, path in enumerate(config.base_weights):
        multiplier = config.multiplier(index)
        network, weights = create_network_from_weights(
            module, multiplier, path, components.vae, te_arg, components.unet, for_inference=True,
            unet_module_name=names,
        )
        network.merge_to(te_arg, components.unet, weights, None, None)
        logger.info(msg("run.base_weights_merged", "--base_weights {path} merged into the model at multiplier "
                        "{multiplier}", path=path, multiplier=multiplier))
