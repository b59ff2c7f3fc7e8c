"""The Memory panel's torch-free parts: the card sizes offered (with the GPUs nvidia-smi reports) and the
breakdown and proposal as Markdown."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from backend.memory.estimate import Estimate, Line
from backend.memory.fit import GB, Change, FitResult
from gui import gpus
from gui.i18n import Translator
from gui.markdown_text import md_escape
from gui.training import memory_panel


@pytest.fixture(autouse=True)
def fresh_detection():
    gpus.detected_gpus.cache_clear()
    yield
    gpus.detected_gpus.cache_clear()


def test_detected_gpus_come_first(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(argv, **kwargs):
        assert argv[0] == "nvidia-smi"
        return subprocess.CompletedProcess(argv, 0, "NVIDIA GeForce RTX 3060, 12288\nbroken line\n", "")

    monkeypatch.setattr(gpus.subprocess, "run", fake_run)
    choices = memory_panel.card_choices(Translator("en"))
    assert choices[0] == ("GPU 0: NVIDIA GeForce RTX 3060 (12 GB)", str(12 * GB))
    assert [label for label, _ in choices[1:]] == ["8 GB", "12 GB", "16 GB", "24 GB", "48 GB"]


def test_no_nvidia_smi_offers_the_usual_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(argv, **kwargs):
        raise FileNotFoundError(argv[0])

    monkeypatch.setattr(gpus.subprocess, "run", missing)
    assert memory_panel.card_choices(Translator("ja"))[0] == ("8 GB", str(8 * GB))


def test_breakdown_and_proposal_markdown_escape_what_they_show(tmp_path: Path) -> None:
    lines = (Line("host.process", "Trainer process", host=GB), Line("weights.denoiser", "Denoiser <weights>", gpu=2 * GB,
             detail="859.5 M parameters, 16-bit"), Line("host.loading", "Loading", host=GB, transient=True))  # fmt: skip
    planned = Estimate("train_network", "sd1", "cuda", lines, ("note_with_*stars*",))
    shown = memory_panel.breakdown_markdown(planned, Translator("en"))
    assert f"| {md_escape('Denoiser <weights>')} | 2.00 GiB | - |" in shown and "| 1.00 GiB * |" in shown
    assert f"- {md_escape('note_with_*stars*')}" in shown and "**GPU peak 2.00 GiB**" in shown
    fitted = FitResult(True, 8 * GB, planned, planned, [Change("cache_latents", True, "VAE off the GPU")])
    proposal = memory_panel.fit_markdown(fitted, Translator("ja"))
    assert "`cache_latents`" in proposal and "8.00 GiB に収まります" in proposal
    nothing = FitResult(False, 8 * GB, planned, planned, [])
    assert "メモリ節約機能はすべて有効" in memory_panel.fit_markdown(nothing, Translator("ja"))
