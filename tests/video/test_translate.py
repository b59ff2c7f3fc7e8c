"""finetrainers' options as the shared rooms read them (backend/video/translate.py)."""

from __future__ import annotations

import pytest

from backend.options import parse_args
from backend.video.translate import internal_namespace


def internal(*flags: str):
    args = parse_args("train_video", ["--model_name", "wan", "--pretrained_model_name_or_path", "/m",
                                      "--output_dir", "/out", *flags])
    return internal_namespace(args, 1, None)


@pytest.mark.parametrize(("training_type", "dtype", "full_bf16", "full_fp16"), [
    ("full-finetune", "bf16", True, False),  # finetrainers trains the weights in the dtype itself
    ("full-finetune", "fp16", False, True),
    ("full-finetune", "fp32", False, False),
    ("lora", "bf16", False, False),  # a LoRA's own weights stay float32
])
def test_a_full_fine_tune_trains_its_weights_in_the_transformer_dtype(training_type: str, dtype: str,
                                                                       full_bf16: bool, full_fp16: bool) -> None:
    run = internal("--training_type", training_type, "--transformer_dtype", dtype)
    assert (run.full_bf16, run.full_fp16) == (full_bf16, full_fp16)
    assert run.mixed_precision == {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[dtype]


def test_precomputation_caches_latents_and_conditions_on_disk() -> None:
    plain = internal("--training_type", "lora")
    assert not plain.cache_latents and not plain.cache_text_encoder_outputs_to_disk
    run = internal("--training_type", "lora", "--enable_precomputation")
    assert run.cache_latents and run.cache_text_encoder_outputs and run.cache_text_encoder_outputs_to_disk


def test_a_float32_vae_is_kept_in_float32() -> None:
    assert internal("--training_type", "lora", "--vae_dtype", "fp32").no_half_vae
    assert not internal("--training_type", "lora").no_half_vae
