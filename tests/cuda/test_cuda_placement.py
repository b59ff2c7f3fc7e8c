"""Where modules and data live on a GPU run, and that memory is given back: the VAE leaves the GPU
after latent caching and the text encoders after text-encoder-output caching (their memory freed,
and back on the CPU after sampling borrowed them); the held-out images of a validation split are
encoded by the parked VAE; batches come from pinned memory; --lowram reads a single file straight
to the device. On the CPU the same runs train, with nothing to move."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend.training import run_setup
from tests.cuda.support import (
    built_run,
    cuda_bytes,
    devices_of,
    finite_losses,
    image_varies,
    train_here,
    warm_up,
    write_prompts,
)
from tests.end_to_end.helpers import base_flags

SLACK = 64 * 1024  # bytes the allocator may hold for anything else a step of build_run keeps (none expected)


def measured(name: str, parts, device: torch.device, records: dict):
    """Wrap run_setup.<name> to record GPU memory and the bytes of `parts(components)` before it runs,
    and GPU memory after it returns (what it freed)."""
    real = getattr(run_setup, name)

    def wrapper(*args, **kwargs):
        components = next(a for a in (*args, *kwargs.values()) if hasattr(a, "text_encoders") and hasattr(a, "vae"))
        if device.type == "cuda":
            torch.cuda.synchronize()
            records["bytes"] = cuda_bytes(parts(components))
            records["before"] = torch.cuda.memory_allocated()
        result = real(*args, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
            records["after"] = torch.cuda.memory_allocated()
        return result

    return wrapper


def assert_freed(records: dict, what: str) -> None:
    if not records:  # the CPU: nothing to free
        return
    freed = records["before"] - records["after"]
    assert records["bytes"] > 0, f"the {what} was not on the GPU before caching"
    assert freed >= records["bytes"] - SLACK, (
        f"caching freed {freed} bytes of GPU memory, the {what} holds {records['bytes']}: it is still referenced")


def test_latent_cache_parks_the_vae_on_the_cpu_and_sampling_returns_it(tiny, train_dir, tmp_path, device,
                                                                       monkeypatch) -> None:
    warm_up(device)
    records: dict = {}
    monkeypatch.setattr(run_setup, "prepare_data", measured("prepare_data", lambda c: [c.vae], device, records))
    placed: dict[str, set[str]] = {}

    def observe(run) -> None:
        placed.update(vae=devices_of(run.components.vae), unet=devices_of(run.components.unet))

    trained = train_here("train_network", base_flags(
        tiny.get("sd15").path, train_dir, tmp_path, "--max_train_steps", "2", "--network_dim", "4",
        "--mixed_precision", "bf16", "--cache_latents", "--sample_prompts", str(write_prompts(tmp_path)),
        "--sample_at_first", "--sample_every_n_steps", "2",
    ), device, observe).ok()
    finite_losses(trained.result)
    assert placed == {"vae": {"cpu"}, "unet": {device.type}}
    assert_freed(records, "VAE")
    samples = trained.result.of("sample")
    assert [s["step"] for s in samples] == [0, 2] and all(image_varies(Path(s["path"])) for s in samples)
    assert devices_of(trained.run.components.vae) == {"cpu"}, "sampling left the VAE on the GPU"


def test_text_encoder_cache_parks_the_encoders_on_the_cpu(tiny, train_dir, tmp_path, device, monkeypatch) -> None:
    warm_up(device)
    records: dict = {}
    monkeypatch.setattr(run_setup, "prepare_text_cache",
                        measured("prepare_text_cache", lambda c: c.text_encoders, device, records))
    placed: dict[str, object] = {}

    def observe(run) -> None:
        placed["encoders"] = set().union(*(devices_of(te) for te in run.components.text_encoders))
        placed["cache"] = {t.device.type for e in run.text_cache.embeds.values() for t in (e.hidden_states, e.pooled)}

    trained = train_here("sdxl_train_network", base_flags(
        tiny.get("sdxl").path, train_dir, tmp_path, "--max_train_steps", "2", "--network_dim", "4",
        "--mixed_precision", "bf16", "--network_train_unet_only", "--cache_text_encoder_outputs", "--cache_latents",
        "--sample_prompts", str(write_prompts(tmp_path)), "--sample_every_n_steps", "2",
    ), device, observe).ok()
    finite_losses(trained.result)
    assert placed == {"encoders": {"cpu"}, "cache": {"cpu"}}
    assert_freed(records, "text encoders")
    [sample] = trained.result.of("sample")
    assert image_varies(Path(sample["path"]))
    for encoder in trained.run.components.text_encoders:
        assert devices_of(encoder) == {"cpu"}, "sampling left a text encoder on the GPU"


def test_validation_encodes_held_out_images_with_the_parked_vae(tiny, train_dir, tmp_path, device) -> None:
    """Training latents cached: the VAE waits on the CPU (in the compute precision) and encodes the
    held-out images there for the validation loss."""
    precision = "fp16" if device.type == "cuda" else "bf16"
    result = train_here("train_network", base_flags(
        tiny.get("sd15").path, train_dir, tmp_path, "--max_train_steps", "2", "--network_dim", "4",
        "--mixed_precision", precision, "--cache_latents", "--validation_split", "0.34",
        "--validate_every_n_steps", "2",
    ), device).ok().result
    finite_losses(result)
    [validation] = result.of("validation")
    assert validation["step"] == 2 and validation["loss"] is not None and validation["loss"] > 0


@pytest.mark.cuda_only
def test_batches_come_from_pinned_memory(tiny, train_dir, tmp_path, device) -> None:
    with built_run("train_network", base_flags(
        tiny.get("sd15").path, train_dir, tmp_path, "--max_train_steps", "2", "--network_dim", "4",
        "--mixed_precision", "bf16", "--max_data_loader_n_workers", "2", "--persistent_data_loader_workers",
    ), device) as run:
        assert run.loader.pin_memory
        run.group.set_epoch(1)
        batch = next(iter(run.loader))
        assert batch["images"].is_pinned() and batch["loss_weights"].is_pinned()


@pytest.mark.cuda_only
def test_cached_latents_train_through_pinned_memory_with_workers(tiny, train_dir, tmp_path, device) -> None:
    """Loader worker processes, the pinning thread and non_blocking copies of cached latents."""
    result = train_here("train_network", base_flags(
        tiny.get("sd15").path, train_dir, tmp_path, "--max_train_steps", "3", "--network_dim", "4",
        "--mixed_precision", "bf16", "--cache_latents", "--max_data_loader_n_workers", "2",
        "--persistent_data_loader_workers",
    ), device).ok().result
    assert [e["step"] for e in result.of("step")] == [1, 2, 3]
    finite_losses(result)


def test_lowram_reads_a_single_file_onto_the_device(tiny, train_dir, tmp_path, device) -> None:
    model = tiny.get("sd15", single_file=True)
    placed: dict[str, set[str]] = {}
    trained = train_here("train_network", base_flags(
        model.path, train_dir, tmp_path, *model.trainer_flags()[2:], "--max_train_steps", "2", "--network_dim", "4",
        "--mixed_precision", "bf16", "--lowram",
    ), device, lambda run: placed.update(unet=devices_of(run.components.unet))).ok()
    finite_losses(trained.result)
    assert placed == {"unet": {device.type}}
    assert (tmp_path / "tiny.safetensors").is_file()
