"""extract_lora_from_models: a known low-rank change of a few layers comes back at full rank."""

from __future__ import annotations

import torch

from backend.families.loaded import get_spec
from backend.tools.lora import extract_lora_from_models
from backend.tools.lora.lora_files import load_lora, module_delta
from backend.tools.lora.tool_cli import run_tool
from tests.tools.lora.conftest import sd15_targets


def test_extract_reproduces_a_low_rank_delta(tiny, tmp_path, capsys) -> None:
    base = tiny.get("sd15", single_file=True)
    spec = get_spec("sd1")
    model = spec.load(base.path, tokenizer_cache_dir=base.tokenizer_cache_dir)
    targets = sd15_targets(model)
    chosen = [t for t in targets if t.kind == "linear" and t.text_encoder_index is None][:3]
    chosen += [t for t in targets if t.kind == "conv"][:1]
    generator = torch.Generator().manual_seed(5)
    deltas = {}
    with torch.no_grad():
        for target in chosen:
            weight = target.module.weight
            up, down = torch.randn(weight.shape[0], 2, generator=generator), torch.randn(2, weight[0].numel(), generator=generator)
            deltas[target.lora_name] = (up @ down).reshape(weight.shape) * 0.1
            weight += deltas[target.lora_name]
    tuned = tmp_path / "tuned.safetensors"
    spec.save(model, tuned)
    out = tmp_path / "extracted.safetensors"
    code = run_tool(extract_lora_from_models.main, [
        "--model_org", str(base.path), "--model_tuned", str(tuned), "--save_to", str(out), "--dim", "4",
        "--conv_dim", "4", "--clamp_quantile", "1", "--min_diff", "0.001",
    ])
    stdout = capsys.readouterr().out
    assert code == 0
    lora = load_lora(out)
    assert set(lora.modules) == set(deltas)
    for name, delta in deltas.items():
        torch.testing.assert_close(module_delta(name, lora.modules[name]), delta, atol=1e-4, rtol=1e-3)
    assert "text encoder:" in stdout and "skipped" in stdout
    assert lora.metadata["ss_base_model_version"] == "sd_v1" and lora.metadata["ss_network_dim"] == "4"

    code = run_tool(extract_lora_from_models.main, [
        "--model_org", str(base.path), "--model_tuned", str(tiny.get("sdxl").path), "--save_to", str(out)])
    assert code == 2 and "SDXL" in capsys.readouterr().err


def test_extract_flags_that_contradict_the_models_are_errors(tiny, tmp_path, capsys) -> None:
    # The same weights twice, as a diffusers folder and as a single file.
    base, same = str(tiny.get("sd15").path), str(tiny.get("sd15", single_file=True).path)
    for flag in ("--sdxl", "--v2"):
        code = run_tool(extract_lora_from_models.main, [
            "--model_org", base, "--model_tuned", same, "--save_to", str(tmp_path / "x.safetensors"), flag])
        assert code == 2 and "check --sdxl/--v2" in capsys.readouterr().err
    code = run_tool(extract_lora_from_models.main, [
        "--model_org", base, "--model_tuned", same, "--save_to", str(tmp_path / "x.safetensors"), "--min_diff", "0.001"])
    assert code == 2 and "nothing to extract" in capsys.readouterr().err
    # One path given twice is answered before any model is loaded.
    code = run_tool(extract_lora_from_models.main, [
        "--model_org", base, "--model_tuned", base, "--save_to", str(tmp_path / "x.safetensors")])
    assert code == 2 and "are the same model" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
