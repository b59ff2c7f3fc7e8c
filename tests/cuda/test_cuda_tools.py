"""The tools' `--device cuda`: resize (SVD), merge into a checkpoint and extract (SVD of the
difference) compute on the GPU what they compute on the CPU (SVD factors may differ in sign between
devices, so LoRAs are compared by the weight deltas they add); the BLIP and GIT captioners caption on
the GPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from backend.models.loading import load_components
from backend.tools.captioning import make_captions, make_captions_by_git
from backend.tools.cli.light_cli import run_light_tool
from backend.tools.lora import extract_lora_from_models, merge_lora, resize_lora
from backend.tools.lora.lora_files import load_lora, module_delta, save_lora
from backend.tools.lora.tool_cli import run_tool
from devtools.tiny_captioners import make_tiny_blip, make_tiny_git
from tests.cuda.support import tf32_off
from tests.tools.image_sets import make_image
from tests.tools.lora.conftest import random_module, sd15_targets

pytestmark = pytest.mark.cuda_only


@pytest.fixture(autouse=True)
def no_tf32() -> Iterator[None]:
    with tf32_off():
        yield


def deltas(path: Path) -> dict[str, torch.Tensor]:
    return {name: module_delta(name, params) for name, params in load_lora(path).modules.items()}


def assert_same_deltas(actual: Path, expected: Path) -> None:
    got, want = deltas(actual), deltas(expected)
    assert got.keys() == want.keys() and got
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-3, atol=1e-4, msg=name)


def test_resize_merge_and_extract_on_the_gpu_match_the_cpu(tiny, tmp_path, device, capsys) -> None:
    folder, single = tiny.get("sd15").path, tiny.get("sd15", single_file=True).path
    generator = torch.Generator().manual_seed(0)
    lora = tmp_path / "rank8.safetensors"
    modules = {t.lora_name: random_module(t, "LoRA", 8, generator) for t in sd15_targets(load_components(folder))[::3]}
    save_lora(lora, modules, {"ss_base_model_version": "sd_v1", "ss_network_dim": "8", "ss_network_alpha": "4.0"}, None)

    for name in ("cpu", device.type):
        assert run_tool(resize_lora.main, ["--model", str(lora), "--save_to", str(tmp_path / f"resized-{name}.safetensors"),
                                           "--new_rank", "4", "--device", name]) == 0, capsys.readouterr().err
        merged = tmp_path / f"merged-{name}.safetensors"
        assert run_tool(merge_lora.main, ["--sd_model", str(folder), "--models", str(lora), "--ratios", "0.7",
                                          "--save_to", str(merged), "--device", name]) == 0, capsys.readouterr().err
        assert run_tool(extract_lora_from_models.main, [
            "--model_org", str(single), "--model_tuned", str(merged), "--save_to",
            str(tmp_path / f"extracted-{name}.safetensors"), "--dim", "8", "--conv_dim", "8", "--clamp_quantile", "1",
            "--min_diff", "0.0001", "--device", name,
        ]) == 0, capsys.readouterr().err

    gpu = device.type
    assert_same_deltas(tmp_path / f"resized-{gpu}.safetensors", tmp_path / "resized-cpu.safetensors")
    merged_cpu, merged_gpu = load_file(str(tmp_path / "merged-cpu.safetensors")), load_file(str(tmp_path / f"merged-{gpu}.safetensors"))
    assert merged_cpu.keys() == merged_gpu.keys()
    for key, value in merged_cpu.items():
        torch.testing.assert_close(merged_gpu[key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert_same_deltas(tmp_path / f"extracted-{gpu}.safetensors", tmp_path / "extracted-cpu.safetensors")
    assert len(deltas(tmp_path / "extracted-cpu.safetensors")) == len(modules)  # every merged layer found again


@pytest.mark.parametrize(("tool", "make_model"), [(make_captions, make_tiny_blip), (make_captions_by_git, make_tiny_git)],
                         ids=["blip", "git"])
def test_captioners_run_on_the_gpu(tool, make_model, tmp_path, device, capsys) -> None:
    model = make_model(tmp_path / "model")
    images = tmp_path / "images"
    make_image(images / "red.png")
    make_image(images / "wide.jpg", (64, 32), (0, 0, 255))
    code = run_light_tool(tool.main, [str(images), "--model_id", str(model), "--max_length", "8", "--batch_size", "2",
                                      "--device", device.type])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 written, 0 skipped, 0 failed" in out
    assert all((images / f"{name}.caption").read_text(encoding="utf-8").strip() for name in ("red", "wide"))
