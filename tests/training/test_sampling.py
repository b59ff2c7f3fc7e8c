"""Sample images during training, on tiny SD 1.5 and SDXL models (64x64, 2 steps, CPU)."""

from __future__ import annotations

import io
import logging
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backend.families.loaded import get_spec
from backend.models.components import Components
from backend.training import sample_prompts
from backend.training.progress import ProgressReporter, parse_progress_line
from backend.training.sample_prompts import SamplePrompt, load_sample_prompts, parse_prompt_line
from backend.training.sampling import format_parameters, generate_samples
from devtools.make_tiny_model import make_tiny_model

CPU = torch.device("cpu")
STAMP = r"\d{14}"


def _load(tmp_path_factory: pytest.TempPathFactory, arch: str, family: str) -> Components:
    model = make_tiny_model(arch, tmp_path_factory.mktemp(arch), seed=1)
    return get_spec(family).load(model.path)


@pytest.fixture(scope="module")
def sd15(tmp_path_factory: pytest.TempPathFactory) -> Components:
    return _load(tmp_path_factory, "sd15", "sd1")


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory: pytest.TempPathFactory) -> Components:
    return _load(tmp_path_factory, "sdxl", "sdxl")


def _events(stream: io.StringIO) -> list[dict]:
    return [event for line in stream.getvalue().splitlines() if (event := parse_progress_line(line))]


def _generate(components: Components, prompts: list[SamplePrompt], out: Path, **kwargs) -> list[Path]:
    args = {"sampler": "ddim", "output_name": "tiny", "step": 12, "epoch": None, "dtype": torch.float32}
    return generate_samples(
        get_spec(components.family), components, prompts, output_dir=out, device=CPU, **{**args, **kwargs}
    )


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_sd15_writes_named_pngs_with_metadata_and_reports_each(sd15: Components, tmp_path: Path) -> None:
    prompt_file = tmp_path / "prompts.txt"
    prompt_file.write_text(
        "# comment\n"
        "猫, masterpiece --n low quality --w 64 --h 64 --d 42 --s 2 --l 5\n"
        "a dog --w 70 --h 64 --s 2\n",
        encoding="utf-8",
    )
    stream = io.StringIO()
    paths = _generate(
        sd15, load_sample_prompts(prompt_file), tmp_path, reporter=ProgressReporter(stream), default_seed=100
    )

    assert [p.parent for p in paths] == [tmp_path / "sample"] * 2
    assert re.fullmatch(rf"tiny_000012_00_{STAMP}_42\.png", paths[0].name)
    assert re.fullmatch(rf"tiny_000012_01_{STAMP}\.png", paths[1].name)  # no --d: no seed in the name
    written = sorted(p.name for p in (tmp_path / "sample").iterdir())
    assert written == sorted(p.name for p in paths)  # no temp files left behind
    with Image.open(paths[0]) as first, Image.open(paths[1]) as second:
        assert first.format == "PNG" and first.size == (64, 64)
        assert second.size == (64, 64)  # width rounded down to a multiple of 8, at least 64
        assert first.text["parameters"] == (
            "猫, masterpiece\nNegative prompt: low quality\nSteps: 2, Sampler: ddim, CFG scale: 5.0, "
            "Seed: 42, Size: 64x64, Training output: tiny, Training step: 12"
        )
        assert "Seed: 101," in second.text["parameters"]  # default_seed + prompt index
    assert [(e["event"], e["path"], e["step"], e["epoch"], e["prompt_index"]) for e in _events(stream)] == [
        ("sample", str(paths[0]), 12, None, 0),
        ("sample", str(paths[1]), 12, None, 1),
    ]


def test_sdxl_end_of_epoch_sample(sdxl: Components, tmp_path: Path) -> None:
    stream = io.StringIO()
    prompt = parse_prompt_line("a tiny castle --w 64 --h 64 --s 2 --ss euler")
    (path,) = _generate(sdxl, [prompt], tmp_path, epoch=3, reporter=ProgressReporter(stream))
    assert re.fullmatch(rf"tiny_e000003_00_{STAMP}\.png", path.name)
    with Image.open(path) as image:
        assert image.size == (64, 64)
        assert image.text["parameters"].startswith("a tiny castle\nSteps: 2, Sampler: euler, ")
        assert image.text["parameters"].endswith("Training step: 12, Training epoch: 3")
    assert [(e["prompt_index"], e["epoch"]) for e in _events(stream)] == [(0, 3)]


def test_modes_and_rng_states_are_restored(sd15: Components, tmp_path: Path) -> None:
    sd15.unet.train()
    sd15.text_encoders[0].train()
    list(sd15.text_encoders[0].modules())[-1].eval()  # mixed modes survive too
    network = torch.nn.Dropout(0.5).train()  # stands in for a LoRA network with dropout
    modules = [sd15.unet, sd15.vae, sd15.text_encoders[0], network]
    before = [[m.training for m in module.modules()] for module in modules]
    seen: list[tuple[bool, bool]] = []
    hook = sd15.unet.register_forward_pre_hook(
        lambda unet, args: seen.append((unet.training, network.training))
    )
    torch_state, python_state, numpy_state = torch.get_rng_state(), random.getstate(), np.random.get_state()
    try:
        # No seed anywhere: a random one, which must not be drawn from the training RNGs.
        _generate(sd15, [parse_prompt_line("a cat --w 64 --h 64 --s 2")], tmp_path, extra_modules=[network])
        after = (torch.rand(4), random.random(), np.random.rand())
        torch.set_rng_state(torch_state)
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        assert torch.equal(after[0], torch.rand(4))
        assert after[1:] == (random.random(), np.random.rand())
        assert seen and set(seen) == {(False, False)}  # the U-Net and the network ran in eval mode
        assert [[m.training for m in module.modules()] for module in modules] == before
    finally:
        hook.remove()
        for module in modules:
            module.eval()


def test_per_prompt_sampler_and_seeds_reproduce(
    sd15: Components, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[str] = []
    real = sample_prompts.get_sampler_scheduler

    def spy(name: str, *args, **kwargs):
        scheduler = real(name, *args, **kwargs)
        used.append(type(scheduler).__name__)
        return scheduler

    monkeypatch.setattr(sample_prompts, "get_sampler_scheduler", spy)
    prompts = [
        parse_prompt_line("a cat --w 64 --h 64 --s 2 --d 5 --ss euler_a", 0),
        parse_prompt_line("a cat --w 64 --h 64 --s 2 --d 6 --ss euler_a", 1),
    ]
    first = _generate(sd15, prompts, tmp_path / "a")
    (again,) = _generate(sd15, prompts[:1], tmp_path / "b")
    assert used == ["EulerAncestralDiscreteScheduler"] * 3
    assert np.array_equal(_pixels(first[0]), _pixels(again))  # same seed, same image (ancestral noise too)
    assert not np.array_equal(_pixels(first[0]), _pixels(first[1]))
    with Image.open(first[0]) as image:
        assert "Sampler: euler_a, " in image.text["parameters"]


def test_failed_prompt_is_logged_and_the_others_continue(
    sd15: Components, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = sample_prompts.get_sampler_scheduler

    def missing_lms(name: str, *args, **kwargs):
        if name == "lms":
            raise ImportError("sampler lms needs scipy")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(sample_prompts, "get_sampler_scheduler", missing_lms)
    stream = io.StringIO()
    prompts = [
        parse_prompt_line("a cat --w 64 --h 64 --s 2 --ss lms", 0),
        parse_prompt_line("a dog --w 64 --h 64 --s 2", 1),
    ]
    with caplog.at_level(logging.WARNING, logger="backend.training.sampling"):
        paths = _generate(sd15, prompts, tmp_path, reporter=ProgressReporter(stream))
    assert [p.name.split("_")[2] for p in paths] == ["01"]
    assert [e["prompt_index"] for e in _events(stream)] == [1]
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "sample image 0" in record.getMessage() and "lms" in record.getMessage()
    assert record.exc_info is not None and "needs scipy" in str(record.exc_info[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_moves_parked_modules_and_back(sd15: Components, tmp_path: Path) -> None:
    cuda = torch.device("cuda", torch.cuda.current_device())
    sd15.unet.to(cuda)
    sd15.text_encoders[0].to(cuda)  # the VAE stays parked on the CPU, as with cached latents
    cuda_state = torch.cuda.get_rng_state(cuda)
    try:
        paths = _generate(
            sd15, [parse_prompt_line("a cat --w 64 --h 64 --s 2")], tmp_path, device=cuda, dtype=torch.float16
        )
        assert len(paths) == 1
        assert _pixels(paths[0]).shape == (64, 64, 3)
        assert torch.equal(torch.cuda.get_rng_state(cuda), cuda_state)
        assert next(sd15.vae.parameters()).device.type == "cpu"
        assert next(sd15.unet.parameters()).device == cuda
        assert next(sd15.unet.parameters()).dtype == torch.float32
    finally:
        sd15.unet.to(CPU)
        sd15.text_encoders[0].to(CPU)


def test_no_prompts_builds_nothing(sd15: Components, tmp_path: Path) -> None:
    assert _generate(sd15, [], tmp_path) == []
    assert not (tmp_path / "sample").exists()


def test_format_parameters_quotes_like_a1111() -> None:
    prompt = SamplePrompt("a cat", width=70, height=64, sample_steps=20, scale=7.0)
    text = format_parameters(
        prompt, "dpmsolver++", 7, output_name="my, lora", step=0, epoch=None, clip_skip=2
    )
    assert text == (
        "a cat\nSteps: 20, Sampler: dpmsolver++, CFG scale: 7.0, Seed: 7, Size: 64x64, Clip skip: 2, "
        'Training output: "my, lora", Training step: 0'
    )
