"""--blocks_to_swap on a FLUX.1 LoRA run (KOHYA_BLOCK_SWAP_ON_CPU=1 runs the swap on this CPU machine): the
LoRA trained with two blocks swapped is the one trained without, and bad values are refused up front."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
import torch
from safetensors.torch import load_file

from devtools.make_tiny_model import TinyModel, make_tiny_model
from devtools.tiny_model_configs import TINY_FLUX

from .helpers import base_flags, run_trainer


@pytest.fixture(scope="module")
def deeper_flux(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """The tiny FLUX.1 schnell folder with 4 double and 6 single blocks: sd-scripts' split keeps two blocks of
    each group on the GPU, so the usual 1 + 2 blocks allow no swapping (this one allows up to 4)."""
    with mock.patch.dict(TINY_FLUX, {"num_layers": 4, "num_single_layers": 6}):
        return make_tiny_model("flux-schnell", tmp_path_factory.mktemp("deeper-flux") / "model", seed=1)


def lora_run(model: TinyModel, train_dir: Path, out: Path, *extra: str):
    flags = base_flags(
        model.path, train_dir, out, "--network_module", "networks.lora", "--network_dim", "4",
        "--network_train_unet_only", "--max_train_steps", "2", "--learning_rate", "1e-2", "--optimizer_type", "AdamW",
        "--save_model_as", "safetensors", "--t5xxl_max_token_length", "16", "--cache_latents", *extra,
    )
    return run_trainer("flux_train_network", *flags)


def test_a_lora_trained_with_swapped_blocks_equals_one_trained_without(deeper_flux, train_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KOHYA_BLOCK_SWAP_ON_CPU", "1")
    plain = lora_run(deeper_flux, train_dir, tmp_path / "plain")
    assert plain.returncode == 0, plain.stderr[-3000:]
    swapped = lora_run(deeper_flux, train_dir, tmp_path / "swapped", "--blocks_to_swap", "2",
                       "--gradient_checkpointing")
    assert swapped.returncode == 0, swapped.stderr[-3000:]
    assert "block swap: 3 of 10 transformer blocks (1 + 2) wait in RAM" in swapped.stderr
    expected = load_file(tmp_path / "plain" / "tiny.safetensors")
    got = load_file(tmp_path / "swapped" / "tiny.safetensors")
    assert expected.keys() == got.keys()
    assert all(torch.equal(got[key], expected[key]) for key in expected), "same seed, same LoRA"
    assert swapped.losses() == plain.losses()


def test_too_many_blocks_and_no_cuda(deeper_flux, train_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KOHYA_BLOCK_SWAP_ON_CPU", "1")
    result = lora_run(deeper_flux, train_dir, tmp_path / "many", "--blocks_to_swap", "5", "--preflight")
    assert result.returncode == 1, "refused before the model is loaded (the folder's config has the block counts)"
    assert "--blocks_to_swap 5: this FLUX.1 [schnell] model allows at most 4" in result.stdout
    monkeypatch.delenv("KOHYA_BLOCK_SWAP_ON_CPU")
    result = lora_run(deeper_flux, train_dir, tmp_path / "nocuda", "--blocks_to_swap", "2", "--preflight")
    assert result.returncode == 0
    assert "no CUDA GPU, so nothing is swapped" in result.stdout
