"""SDXL and LyCORIS runs: an sd-scripts-style long command runs unchanged, and files reload."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from backend.families.loaded import get_spec
from backend.networks.loader import create_network_from_weights, load_network_module

from .helpers import base_flags, run_trainer


def keys_of(path: Path) -> tuple[set[str], dict[str, str]]:
    with safe_open(str(path), "pt") as file:
        return set(file.keys()), file.metadata()


def reload_with(module_name: str, model: Path, family: str, lora: Path):
    """Rebuild the network from the file alone and load every weight back (no missing, no extra keys)."""
    components = get_spec(family).load(model)
    module = load_network_module(module_name)
    te = components.text_encoders if len(components.text_encoders) > 1 else components.text_encoders[0]
    names = None
    if family == "sdxl":
        from backend.training.network_method import unet_file_names

        names = unet_file_names(components)
    network, weights = create_network_from_weights(
        module, 1.0, lora, components.vae, te, components.unet, unet_module_name=names
    )
    network.apply_to(te, components.unet, True, True)
    network.load_weights(str(lora))
    state = network.state_dict()
    assert set(weights) == set(state), set(weights) ^ set(state)
    for key, value in weights.items():
        assert torch.equal(state[key].to(value.dtype), value), key


@pytest.fixture(scope="module")
def sdxl_run(tiny, train_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sdxl-out")
    logs = out / "logs"
    prompts = out / "prompts.txt"
    prompts.write_text("# sample prompts\na photo of sks dog --n blurry --w 64 --h 64 --d 5 --s 2 --l 6\n")
    model = tiny.get("sdxl").path
    flags = base_flags(
        model, train_dir, out,
        "--enable_bucket", "--min_bucket_reso", "32", "--max_bucket_reso", "128", "--bucket_reso_steps", "32",
        "--network_module", "lycoris.kohya", "--network_dim", "4", "--network_alpha", "2",
        "--network_args", "algo=lokr", "factor=4", "conv_dim=4", "conv_alpha=1", "preset=attn-mlp",
        "--cache_latents", "--cache_latents_to_disk",
        "--multires_noise_iterations", "6", "--multires_noise_discount", "0.3", "--noise_offset", "0.05",
        "--gradient_accumulation_steps", "2", "--max_train_steps", "4", "--learning_rate", "1e-3",
        "--optimizer_type", "AdamW", "--lr_scheduler", "cosine", "--lr_warmup_steps", "1",
        "--network_train_unet_only", "--mixed_precision", "bf16", "--min_snr_gamma", "5",
        "--sample_prompts", str(prompts), "--sample_every_n_steps", "4", "--sample_sampler", "euler_a",
        "--logging_dir", str(logs), "--log_prefix", "tiny-", "--save_model_as", "safetensors",
    )
    result = run_trainer("sdxl_train_network", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result, model


def test_sdxl_long_command_trains_caches_samples_and_logs(sdxl_run, train_dir):
    out, result, _ = sdxl_run
    assert [e["step"] for e in result.of("step")] == [1, 2, 3, 4]
    assert sorted(train_dir.rglob("*_sdxl.npz")), "latents cached to disk beside the images"
    samples = [Path(e["path"]) for e in result.of("sample")]
    assert len(samples) == 1 and samples[0].parent == out / "sample" and samples[0].is_file()
    event_files = list((out / "logs").glob("tiny-*/sdxl_train_network/events.out.tfevents.*"))
    assert event_files

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(event_files[0].parent))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    assert "loss/current" in tags and "loss/average" in tags
    assert any(tag.startswith("lr/") for tag in tags)
    assert [event.step for event in accumulator.Scalars("loss/current")] == [1, 2, 3, 4]


def test_sdxl_lycoris_file_uses_sgm_names_and_reloads(sdxl_run):
    out, _, model = sdxl_run
    keys, metadata = keys_of(out / "tiny.safetensors")
    assert any(k.startswith("lora_unet_input_blocks_") for k in keys)
    assert not any(k.startswith("lora_unet_down_blocks_") for k in keys)
    assert not any(k.startswith("lora_te") for k in keys)  # --network_train_unet_only
    assert any(k.endswith(".lokr_w1") for k in keys)
    # As LyCORIS on sd-scripts' SGM U-Net: attn-mlp's TimestepEmbedding rule finds no time/label
    # embedding there (issue 14, item 15).
    assert not any("time_embed" in k or "label_emb" in k for k in keys)
    assert metadata["ss_network_module"] == "lycoris.kohya"
    assert metadata["ss_base_model_version"] == "sdxl_base_v1-0"
    assert metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    reload_with("lycoris.kohya", model, "sdxl", out / "tiny.safetensors")


@pytest.mark.parametrize("algo", ["locon", "loha"])
def test_sd15_lycoris_algos_train_and_reload(tiny, train_dir, tmp_path, algo):
    model = tiny.get("sd15").path
    result = run_trainer(
        "train_network",
        *base_flags(model, train_dir, tmp_path, "--max_train_steps", "2", "--learning_rate", "1e-3",
                    "--network_module", "lycoris.kohya", "--network_dim", "4",
                    "--network_args", f"algo={algo}", "conv_dim=2", "preset=attn-mlp"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lora = tmp_path / "tiny.safetensors"
    keys, _ = keys_of(lora)
    suffix = ".hada_w1_a" if algo == "loha" else ".lora_down.weight"
    assert any(k.startswith("lora_te_text_model_encoder_layers_0_") and k.endswith(suffix) for k in keys)
    reload_with("lycoris.kohya", model, "sd1", lora)


def test_sd2_v_lora(tiny, train_dir, tmp_path):
    model = tiny.get("sd2-v")
    result = run_trainer(
        "train_network",
        *base_flags(model.path, train_dir, tmp_path, "--max_train_steps", "2", "--learning_rate", "1e-2",
                    *model.trainer_flags()[2:], "--scale_v_pred_loss_like_noise_pred"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    keys, metadata = keys_of(tmp_path / "tiny.safetensors")
    assert metadata["ss_base_model_version"] == "sd_v2_v" and metadata["ss_v2"] == "True"
    assert metadata["modelspec.prediction_type"] == "v"
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in keys
    reload_with("networks.lora", model.path, "sd2", tmp_path / "tiny.safetensors")
    from diffusers import StableDiffusionPipeline

    assert diffusers_output_changes(StableDiffusionPipeline, model.path, tmp_path, "tiny.safetensors") > 1e-4


def diffusers_output_changes(pipeline_class, model: Path, lora_dir: Path, weight_name: str) -> float:
    pytest.importorskip("peft")
    pipe = pipeline_class.from_pretrained(str(model))

    def image() -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return pipe("sks dog", num_inference_steps=2, height=64, width=64, generator=generator,
                    output_type="pt").images

    before = image()
    pipe.load_lora_weights(str(lora_dir), weight_name=weight_name)
    return float((image() - before).abs().max())


def test_sdxl_lora_loads_in_diffusers(tiny, train_dir, tmp_path):
    from diffusers import StableDiffusionXLPipeline

    model = tiny.get("sdxl").path
    result = run_trainer(
        "sdxl_train_network",
        *base_flags(model, train_dir, tmp_path, "--max_train_steps", "2", "--learning_rate", "1e-2",
                    "--network_dim", "4"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    keys, _ = keys_of(tmp_path / "tiny.safetensors")
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight" in keys
    assert any(k.startswith("lora_te1_text_model_encoder_layers_0_") for k in keys)
    assert any(k.startswith("lora_te2_text_model_encoder_layers_0_") for k in keys)
    assert diffusers_output_changes(StableDiffusionXLPipeline, model, tmp_path, "tiny.safetensors") > 1e-4
