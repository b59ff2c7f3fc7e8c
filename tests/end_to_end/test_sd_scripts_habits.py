"""Flags sd-scripts users pass out of habit run here: --xformers without the package, --dataset_repeats=0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.training import attention
from backend.training.attention import AttentionConfig
from backend.training.command import run_command

from .helpers import base_flags, run_trainer


def test_xformers_is_used_only_where_it_can_run(monkeypatch) -> None:
    monkeypatch.setattr(attention, "xformers_installed", lambda: True)
    assert attention.use_xformers(AttentionConfig(xformers=True), "cuda")
    assert attention.attention_warnings(AttentionConfig(xformers=True), "cuda") == []
    assert not attention.use_xformers(AttentionConfig(xformers=True), "cpu")  # xformers is CUDA-only
    assert "needs a CUDA GPU" in attention.attention_warnings(AttentionConfig(xformers=True), "cpu")[0]
    # As in sd-scripts, --mem_eff_attn wins over --xformers (it used to be refused here).
    both = AttentionConfig(xformers=True, mem_eff_attn=True)
    assert not attention.use_xformers(both, "cuda")
    assert "--mem_eff_attn wins" in attention.attention_warnings(both, "cuda")[0]
    monkeypatch.setattr(attention, "xformers_installed", lambda: False)
    assert not attention.use_xformers(AttentionConfig(xformers=True), "cuda")
    assert "not installed" in attention.attention_warnings(AttentionConfig(xformers=True), "cuda")[0]


def test_a_guide_command_with_dataset_repeats_0_and_xformers_passes_preflight(capsys, tiny, train_dir, tmp_path):
    model: Path = tiny.get("sd15").path
    argv = [*base_flags(model, train_dir, tmp_path / "out"), "--dataset_repeats=0", "--xformers", "--preflight"]
    try:
        code = run_command("train_network", argv)
    except SystemExit as exit_:  # option errors exit from the parser, as argparse does
        code = int(exit_.code or 0)
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] is True, report["errors"]
    warnings = "\n".join(report["warnings"])
    assert "--dataset_repeats 0 has no effect" in warnings
    if not attention.xformers_installed():
        assert "--xformers: the xformers package is not installed" in warnings and "(SDPA)" in warnings


@pytest.mark.skipif(attention.xformers_installed(), reason="checks the run without the xformers package")
def test_xformers_without_the_package_trains_with_sdpa_and_says_so(tiny, train_dir, tmp_path):
    model: Path = tiny.get("sd15").path
    result = run_trainer(
        "train_network", *base_flags(model, train_dir, tmp_path, "--xformers", "--max_train_steps", "1")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "tiny.safetensors").is_file()
    assert "xformers package is not installed, so attention runs through PyTorch's scaled_dot_product_attention" in (
        result.stderr + result.stdout
    )
