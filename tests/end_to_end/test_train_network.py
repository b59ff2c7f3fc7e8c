"""LoRA training end to end on the tiny models: files, keys, metadata, and that others load them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from .helpers import base_flags, run_trainer
from .sd_scripts_metadata import lora_keys, ss_keys


def read_lora(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as file:
        return {key: file.get_tensor(key) for key in file.keys()}, file.metadata()  # noqa: SIM118 (not a dict)


@pytest.fixture(scope="module")
def sd15_run(tiny, train_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sd15-out")
    model = tiny.get("sd15").path
    result = run_trainer(
        "train_network",
        *base_flags(model, train_dir, out, "--max_train_steps", "4", "--learning_rate", "1e-2",
                    "--network_dim", "4", "--network_alpha", "2", "--save_every_n_steps", "2",
                    "--training_comment", "tiny test"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result, model


def test_sd15_run_reports_progress_and_writes_the_lora(sd15_run):
    out, result, _ = sd15_run
    assert [e["event"] for e in result.events][0] == "start"
    assert [e["step"] for e in result.of("step")] == [1, 2, 3, 4]
    assert all(e["total"] == 4 for e in result.of("step"))
    checkpoints = [Path(e["path"]).name for e in result.of("checkpoint")]
    assert checkpoints == ["tiny-step00000002.safetensors", "tiny.safetensors"]
    assert result.of("end")[0]["reason"] == "completed"
    final = out / "tiny.safetensors"
    assert stat.S_IMODE(os.stat(final).st_mode) & 0o044, "saved files must be readable like any other file"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary files left behind"


def test_sd15_lora_has_sd_scripts_keys_and_metadata(sd15_run):
    out, _, model = sd15_run
    tensors, metadata = read_lora(out / "tiny.safetensors")
    prefixes = {key.split("_", 2)[1] for key in tensors}
    assert prefixes == {"unet", "te"}
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight" in tensors
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight" in tensors
    alphas = [key for key in tensors if key.endswith(".alpha")]
    assert alphas and all(tensors[key].item() == 2.0 for key in alphas)
    down = tensors["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight"]
    assert down.shape[0] == 4

    assert metadata["ss_network_module"] == "networks.lora"
    assert metadata["ss_network_dim"] == "4" and metadata["ss_network_alpha"] == "2.0"
    assert metadata["ss_base_model_version"] == "sd_v1"
    assert metadata["ss_steps"] == "4" and metadata["ss_epoch"] == "1"
    assert metadata["ss_training_comment"] == "tiny test"
    assert metadata["ss_sd_model_name"] == Path(model).name
    assert json.loads(metadata["ss_tag_frequency"])["2_sks dog"]["sks dog"] == 3
    assert json.loads(metadata["ss_dataset_dirs"]) == {"2_sks dog": {"n_repeats": 2, "img_count": 3}}
    assert metadata["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert metadata["modelspec.sai_model_spec"] == "1.0.1"
    assert len(metadata["sshs_model_hash"]) == 64 and len(metadata["sshs_legacy_hash"]) == 8
    assert "ss_session_id" in metadata and "ss_training_started_at" in metadata
    # The folder convention: exactly sd-scripts' keys (issue 14, item 14), the dataset as flat keys.
    assert ss_keys(metadata) == lora_keys(dataset_config=False, network_args=False, model_file=False)
    assert metadata["ss_resolution"] == "(64, 64)" and metadata["ss_batch_size_per_device"] == "1"
    assert (metadata["ss_enable_bucket"], metadata["ss_bucket_info"], metadata["ss_min_bucket_reso"]) == (
        "False", "null", "None")
    assert metadata["ss_reg_dataset_dirs"] == "{}" and metadata["ss_flip_aug"] == "False"


def test_sd15_lora_loads_in_diffusers_and_changes_its_output(sd15_run):
    pytest.importorskip("peft")
    from diffusers import StableDiffusionPipeline

    out, _, model = sd15_run
    pipe = StableDiffusionPipeline.from_pretrained(str(model), safety_checker=None, requires_safety_checker=False)

    def image() -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return pipe("sks dog", num_inference_steps=2, height=64, width=64, generator=generator,
                    output_type="pt").images

    before = image()
    pipe.load_lora_weights(str(out), weight_name="tiny.safetensors")
    after = image()
    assert (after - before).abs().max() > 1e-4


def test_our_loader_reloads_the_lora(sd15_run):
    from backend.families.loaded import get_spec
    from backend.networks.loader import create_network_from_weights, load_network_module

    out, _, model = sd15_run
    components = get_spec("sd1").load(model)
    module = load_network_module("networks.lora")
    network, weights = create_network_from_weights(
        module, 1.0, out / "tiny.safetensors", components.vae, components.text_encoders[0], components.unet
    )
    network.apply_to(components.text_encoders[0], components.unet, True, True)
    network.load_weights(out / "tiny.safetensors")
    saved, _ = read_lora(out / "tiny.safetensors")
    state = network.state_dict()
    assert set(saved) <= set(state)
    for key, value in saved.items():
        assert torch.equal(state[key].to(value.dtype), value), key


def half_masks(train_dir: Path, root: Path, left: bool) -> Path:
    """A mask per image of `train_dir`, 1 on the left (or right) half of the image: every image keeps its halves
    when resized and center-cropped to 64x64, so the mask is 1 on exactly 4 of the 8 latent columns."""
    for image in (train_dir / "2_sks dog").glob("*.png"):
        width, height = Image.open(image).size
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[:, : width // 2] = 255
        (root / "2_sks dog").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask if left else 255 - mask).save(root / "2_sks dog" / image.name)
    return root


def test_masked_loss_is_the_loss_over_the_masked_region(sd15_run, tiny, train_dir, tmp_path):
    """--masked_loss: each half's mask leaves the other half's error out entirely, and the two halves add up to
    sd15_run's unmasked loss (masked-out elements count as 0 in the mean, as in sd-scripts). Step 1 of both is the
    base model on the same sample, noise and timestep; the mask pipeline itself is tests/data/test_masks.py."""
    whole = sd15_run[1].losses()[1]
    model = tiny.get("sd15").path
    right = half_masks(train_dir, tmp_path / "right", left=False)
    config = tmp_path / "data.toml"  # sd-scripts' way: a subset with conditioning_data_dir
    config.write_text(f"[[datasets]]\n[[datasets.subsets]]\nimage_dir = '{train_dir / '2_sks dog'}'\nnum_repeats = 2\n"
                      f"conditioning_data_dir = '{right / '2_sks dog'}'\ncaption_extension = '.txt'\n")
    losses = []
    for i, masks in enumerate((["--conditioning_data_dir", str(half_masks(train_dir, tmp_path / "left", left=True))],
                               ["--dataset_config", str(config)])):
        result = run_trainer("train_network", *base_flags(model, train_dir, tmp_path / f"out{i}", "--max_train_steps",
                                                          "1", "--network_dim", "4", "--masked_loss", *masks))
        assert result.returncode == 0, result.stderr[-3000:]
        losses.append(result.losses()[1])
    left, right_loss = losses
    assert 0 < left < whole and 0 < right_loss < whole and abs(left - right_loss) > 1e-6
    assert abs((left + right_loss) - whole) <= 1e-5 * whole
