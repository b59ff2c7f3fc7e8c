"""The memory planner (backend/memory) on headers of full-size models (sparse files: no weights on disk):
parameters per component from the header, where each part lives with the run's options, optimizer states,
and fit_to_card's choices and order."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from backend.memory import optimizers
from backend.memory.estimate import GIB, PlanError, estimate
from backend.memory.fit import GB, fit_to_card
from backend.memory.weights import WeightsUnreadable
from tests.memory.sparse_models import write_sparse_model


@pytest.fixture(scope="module")
def sd15(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sparse_model("sd15", tmp_path_factory.mktemp("sparse") / "sd15.safetensors")


def lora(model: Path, **options: object) -> dict[str, object]:
    return {"pretrained_model_name_or_path": str(model), "resolution": "512,512", "network_dim": 8,
            "network_module": "networks.lora", "mixed_precision": "fp16", **options}  # fmt: skip


def line(planned, key: str):
    return next(item for item in planned.lines if item.key == key)


def test_a_sparse_file_is_full_size_on_its_header_alone(sd15: Path) -> None:
    assert sd15.stat().st_size > 1.9e9 and sd15.stat().st_blocks * 512 < 1e6  # sparse: almost nothing on disk
    planned = estimate("train_network", lora(sd15), "cuda")
    # SD 1.5's real parameter counts (U-Net 859.5 M, CLIP ViT-L 123.1 M, VAE 83.7 M), in fp16
    assert "859.5 M" in line(planned, "weights.denoiser").detail
    assert "123.1 M" in line(planned, "weights.text_encoder_1").detail
    assert "83.7 M" in line(planned, "weights.vae").detail
    assert line(planned, "weights.denoiser").gpu == 859_520_964 * 2


def test_options_move_parts_and_change_sizes(sd15: Path) -> None:
    base = estimate("train_network", lora(sd15), "cuda")
    fp32 = estimate("train_network", lora(sd15, mixed_precision="no"), "cuda")
    assert line(fp32, "weights.denoiser").gpu == 2 * line(base, "weights.denoiser").gpu
    cached = estimate("train_network", lora(sd15, cache_latents=True), "cuda")
    assert line(cached, "weights.vae").gpu == 0 and line(cached, "weights.vae").host == line(base, "weights.vae").gpu
    checkpointed = estimate("train_network", lora(sd15, gradient_checkpointing=True), "cuda")
    assert 0 < line(checkpointed, "activations").gpu < line(base, "activations").gpu
    batch2 = estimate("train_network", lora(sd15, train_batch_size=2), "cuda")
    assert line(batch2, "activations").gpu == pytest.approx(2 * line(base, "activations").gpu, rel=0.01)
    fp8 = estimate("train_network", lora(sd15, fp8_base=True), "cuda")
    assert line(fp8, "weights.denoiser").gpu < 0.6 * line(base, "weights.denoiser").gpu
    unet_only = estimate("train_network", lora(sd15, network_train_unet_only=True), "cuda")
    assert line(unet_only, "network").gpu < line(base, "network").gpu
    # on the CPU everything is host memory, and nothing is a GPU's
    cpu = estimate("train_network", lora(sd15), "cpu")
    assert cpu.gpu_peak == 0 and cpu.host_peak > line(cpu, "weights.denoiser").host


def test_full_fine_tune_gradients_optimizers_and_fused_backward(sd15: Path) -> None:
    options = lora(sd15, mixed_precision="bf16")
    adamw = estimate("fine_tune", options, "cuda")
    unet = line(adamw, "weights.denoiser").gpu
    assert unet == 859_520_964 * 4  # trained weights stay float32 under mixed precision
    assert line(adamw, "gradients").gpu == unet and line(adamw, "optimizer").gpu == 2 * unet
    assert line(estimate("fine_tune", {**options, "optimizer_type": "AdamW8bit"}, "cuda"), "optimizer").gpu == unet // 2
    adafactor = estimate("fine_tune", {**options, "optimizer_type": "Adafactor"}, "cuda")
    # factored second moments: a row and a column average over the last two dimensions (a 3x3 conv keeps 2/3 of
    # its size, a matrix almost nothing), about half the U-Net's float32 size in all
    assert 0.3 * unet < line(adafactor, "optimizer").gpu < 0.6 * unet
    fused = estimate("fine_tune", {**options, "optimizer_type": "Adafactor", "fused_backward_pass": True}, "cuda")
    assert line(fused, "gradients").gpu < unet / 25  # the largest weight's gradient at a time
    assert optimizers.state_bytes("adafactor", [(320, 640, 3, 3)]) == 4 * (320 * 640 * 3 + 320 * 640 * 3)


def test_fit_to_card_takes_the_cheapest_savers_first(sd15: Path) -> None:
    heavy = lora(sd15, mixed_precision="no", train_batch_size=4, optimizer_type="AdamW")
    fitted = fit_to_card("train_network", heavy, 8 * GB)
    options = [change.option for change in fitted.changes]
    assert fitted.fits and fitted.after.card_need() <= 8 * GB < fitted.before.card_need()
    assert options[:2] == ["cache_latents", "mixed_precision"] and all(change.reason for change in fitted.changes)
    assert fitted.estimate is fitted.after
    # a saver already on is not proposed again; a large card needs nothing
    assert "cache_latents" not in [c.option for c in fit_to_card("train_network", {**heavy, "cache_latents": True},
                                                                  8 * GB).changes]  # fmt: skip
    roomy = fit_to_card("train_network", heavy, 48 * GB)
    assert roomy.fits and roomy.changes == []
    # a card nothing can fit: every saver of the command, the batch down to 1, and fits False
    hopeless = fit_to_card("train_network", heavy, 1 * GB)
    assert not hopeless.fits and ("train_batch_size", 1) in [(c.option, c.value) for c in hopeless.changes]
    assert "fp8_base" in [c.option for c in hopeless.changes]
    # a fine-tune has no fp8_base (the command does not take it) but the fused backward pass
    tuned = fit_to_card("fine_tune", lora(sd15, mixed_precision="bf16", optimizer_type="Adafactor"), 6 * GB)
    assert "fused_backward_pass" in [c.option for c in tuned.changes]
    assert "fp8_base" not in [c.option for c in tuned.changes]
    assert json.dumps(tuned.as_json())  # the JSON the preflight report and other callers read


def test_an_sdxl_fine_tune_with_adamw_fits_24_gb_only_with_adafactor(tmp_path: Path) -> None:
    sdxl = write_sparse_model("sdxl", tmp_path / "sdxl.safetensors")
    adamw = {"pretrained_model_name_or_path": str(sdxl), "resolution": "1024,1024", "mixed_precision": "bf16",
             "optimizer_type": "AdamW", "optimizer_args": ["weight_decay=0.01", "betas=0.9,0.999"]}  # fmt: skip
    fitted = fit_to_card("sdxl_train", adamw, 24 * GB)
    changes = {change.option: change.value for change in fitted.changes}
    assert fitted.fits and fitted.before.card_need() > 24 * GB
    # every saver that changes nothing first (the fused pass alone leaves AdamW's 21 GB of moments), then Adafactor
    # with sd-scripts' settings in place of AdamW's arguments
    assert [c.option for c in fitted.changes][:3] == ["cache_latents", "gradient_checkpointing", "fused_backward_pass"]
    assert changes["optimizer_type"] == "Adafactor"
    assert changes["optimizer_args"] == ["scale_parameter=False", "relative_step=False", "warmup_init=False"]
    assert all(change.reason for change in fitted.changes)
    # 8-bit AdamW (no fused pass beside it) and fp16 (whose loss scaler forbids the fused pass) also end on Adafactor,
    # which then takes the fused pass only where the precision allows it
    eight_bit = fit_to_card("sdxl_train", {**adamw, "optimizer_type": "AdamW8bit"}, 24 * GB)
    assert ("optimizer_type", "Adafactor") in [(c.option, c.value) for c in eight_bit.changes]
    assert ("fused_backward_pass", True) in [(c.option, c.value) for c in eight_bit.changes]
    fp16 = fit_to_card("sdxl_train", {**adamw, "mixed_precision": "fp16"}, 24 * GB)
    assert not fp16.fits and "fused_backward_pass" not in [c.option for c in fp16.changes]  # float32 gradients stay
    assert ("optimizer_type", "Adafactor") in [(c.option, c.value) for c in fp16.changes]
    # a LoRA keeps its optimizer: its states are small
    network = fit_to_card("sdxl_train_network", {**adamw, "network_module": "networks.lora", "network_dim": 16},
                          8 * GB)  # fmt: skip
    assert network.fits and ("optimizer_type", "AdamW8bit") in [(c.option, c.value) for c in network.changes]


def test_what_cannot_be_planned_says_why(sd15: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsUnreadable, match="no such file or folder"):
        estimate("train_network", lora(tmp_path / "gone.safetensors"), "cuda")
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(WeightsUnreadable, match=r"\.safetensors headers only"):
        estimate("train_network", lora(pickle), "cuda")
    with pytest.raises(PlanError, match="no base model"):
        estimate("train_network", {}, "cuda")
    with pytest.raises(PlanError, match="no such training command"):
        estimate("train_nothing", lora(sd15), "cuda")
    noted = estimate("train_network", lora(sd15, optimizer_type="bitsandbytes.optim.Mystery"), "cuda")
    assert any("counted as AdamW" in note for note in noted.notes)


def test_block_swap_keeps_the_last_blocks_in_host_memory(tmp_path: Path) -> None:
    """A FLUX.1-layout header (19 double, 38 single blocks of 1 M parameters each): --blocks_to_swap 4 keeps two
    double and four single blocks in host memory, as sd-scripts counts them."""
    header: dict[str, object] = {}
    offset = 0
    for group, count in (("double_blocks", 19), ("single_blocks", 38)):
        for index in range(count):
            header[f"{group}.{index}.linear.weight"] = {"dtype": "BF16", "shape": [1000, 1000],
                                                        "data_offsets": [offset, offset + 2_000_000]}  # fmt: skip
            offset += 2_000_000
    raw = json.dumps(header).encode()
    path = tmp_path / "flux.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with open(path, "r+b") as file:
        file.truncate(8 + len(raw) + offset)
    options = {"pretrained_model_name_or_path": str(path), "mixed_precision": "bf16", "model_type": "flux_dev",
               "resolution": "1024", "network_dim": 4}  # fmt: skip
    plain = estimate("flux_train_network", options, "cuda")
    swapped = estimate("flux_train_network", {**options, "blocks_to_swap": 4}, "cuda")
    moved = 6 * 1_000_000 * 2
    assert line(plain, "weights.denoiser").gpu - line(swapped, "weights.denoiser").gpu == moved
    assert line(swapped, "weights.denoiser").host == moved
    assert any("no activation measurement" in note for note in plain.notes)  # FLUX.1: not measured yet
    assert GIB == 1024**3


def test_preflight_report_and_view_carry_the_estimate(sd15: Path) -> None:
    import argparse

    from backend.training.memory_preflight import memory_check
    from gui.i18n import Translator
    from gui.runs.progress_view import preflight_markdown

    report, warnings = memory_check(argparse.Namespace(**lora(sd15)), "train_network", "sd1")
    assert report["family"] == "sd1" and report["host_peak_bytes"] > 0 and warnings == []  # no GPU here
    assert {line["key"] for line in report["lines"]} >= {"weights.denoiser", "network", "optimizer", "activations"}
    shown = preflight_markdown({"ok": True, "memory": report}, Translator("en"))
    assert "Predicted memory" in shown and "Denoiser weights" in shown
    missing, _ = memory_check(argparse.Namespace(**lora(sd15.with_name("gone.safetensors"))), "train_network", "sd1")
    assert "no such file or folder" in preflight_markdown({"ok": True, "memory": missing}, Translator("en"))
