"""sd-scripts flags that mean nothing somewhere here are refused with the reason and what to use instead."""

from __future__ import annotations

from backend.options.names import unknown_name_message


def test_dataset_class_is_refused_with_the_dataset_toml_to_use_instead() -> None:
    message = unknown_name_message("dataset_class", "train_network", prefix="--")
    assert "train_util dataset classes" in message and "--dataset_config" in message
    assert "does not implement" not in message  # not "not yet": it cannot mean anything here


def test_weighted_captions_is_refused_for_flux_and_sd3_with_the_reason() -> None:
    for command in ("flux_train_network", "flux_train", "sd3_train_network", "sd3_train"):
        message = unknown_name_message("weighted_captions", command)
        assert "sdxl_train_network" in message and "FLUX.1 tokenizer has no weighted form" in message
