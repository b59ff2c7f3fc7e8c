"""merge_lora: into a checkpoint (LoRA/LoCon/LoHa/LoKr), LoRA + LoRA (concat, SVD), refusals."""

from __future__ import annotations

import pytest
import torch

from backend.families.loaded import get_spec
from backend.tools.lora import merge_lora
from backend.tools.lora.lora_files import load_lora, module_delta, save_lora
from backend.tools.lora.lora_layers import lora_layers
from backend.tools.lora.tool_cli import run_tool


def merge(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_tool(merge_lora.main, list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expected_loha(p: dict) -> torch.Tensor:
    rank = p["hada_w1_b"].shape[0]
    return (p["hada_w1_a"] @ p["hada_w1_b"]) * (p["hada_w2_a"] @ p["hada_w2_b"]) * (p["alpha"] / rank)


def expected_lokr(p: dict) -> torch.Tensor:
    rank = p["lokr_w2_b"].shape[0]
    return torch.kron(p["lokr_w1"], p["lokr_w2_a"] @ p["lokr_w2_b"]) * (p["alpha"] / rank)


def test_trained_lora_and_lycoris_merge_into_checkpoint(tiny, sd15, trained_lora, make_lora, tmp_path, capsys) -> None:
    loha, lokr = make_lora("loha.safetensors", "LoHa", seed=1), make_lora("lokr.safetensors", "LoKr", seed=2, step=4)
    out = tmp_path / "merged.safetensors"
    code, stdout, err = merge(capsys, "--sd_model", str(tiny.get("sd15").path), "--models", str(trained_lora),
                              str(loha), str(lokr), "--ratios", "0.7", "0.5", "-1", "--save_to", str(out))
    assert code == 0, err
    merged = get_spec("sd1").load(out, tokenizer_cache_dir=tiny.get("sd15", single_file=True).tokenizer_cache_dir)
    base_layers, merged_layers = lora_layers(sd15.unet, sd15.text_encoders), lora_layers(merged.unet, merged.text_encoders)
    expected = {name: layer.weight.detach().clone() for name, layer in base_layers.items()}
    for path, ratio, formula in ((trained_lora, 0.7, None), (loha, 0.5, expected_loha), (lokr, -1.0, expected_lokr)):
        for name, params in load_lora(path).modules.items():
            if formula is None:  # independent of the tool: scale * up @ down
                up, down = params["lora_up.weight"].flatten(1), params["lora_down.weight"]
                delta = (up @ down.flatten(1)) * (params["alpha"] / down.shape[0])
            else:
                delta = formula(params)
            expected[name] += ratio * delta.reshape(expected[name].shape)
    changed = 0
    for name, weight in expected.items():
        torch.testing.assert_close(merged_layers[name].weight, weight, atol=1e-5, rtol=1e-5)
        changed += not torch.equal(weight, base_layers[name].weight)
    assert changed > 20
    assert "merged" in stdout


def test_sdxl_lora_onto_sd15_is_refused_before_loading(tiny, make_lora, tmp_path, capsys) -> None:
    sdxl = tmp_path / "sdxl.safetensors"
    def module() -> dict[str, torch.Tensor]:
        return {"lora_down.weight": torch.zeros(2, 8), "lora_up.weight": torch.zeros(8, 2), "alpha": torch.tensor(1.0)}

    save_lora(sdxl, {"lora_unet_input_blocks_4_1_proj_in": module(), "lora_te1_text_model_encoder_layers_0_mlp_fc1": module()},
              {"ss_base_model_version": "sdxl_base_v1-0"}, None)
    out = tmp_path / "never.safetensors"
    code, _, err = merge(capsys, "--sd_model", str(tiny.get("sd15").path), "--models", str(sdxl), "--save_to", str(out))
    assert code == 2 and "SDXL" in err and "SD 1.x" in err
    assert not out.exists()
    code, _, err = merge(capsys, "--models", str(sdxl), str(make_lora()), "--save_to", str(out))
    assert code == 2 and "different architectures" in err
    code, _, err = merge(capsys, "--models", str(tmp_path / "nope.safetensors"), "--save_to", str(out))
    assert code == 2 and "not found" in err
    not_lora = tmp_path / "model.safetensors"
    save_lora(not_lora, {"model": {"weight": torch.zeros(2)}}, {}, None)
    code, _, err = merge(capsys, "--models", str(not_lora), "--save_to", str(out))
    assert code == 2 and "not a LoRA file" in err


@pytest.mark.parametrize("mode", [["--concat"], ["--new_rank", "8"]])
def test_lora_plus_lora(make_lora, tmp_path, capsys, mode) -> None:
    a, b = make_lora("a.safetensors", rank=4, seed=3), make_lora("b.safetensors", rank=4, seed=4, step=2)
    out = tmp_path / "ab.safetensors"
    code, _, err = merge(capsys, "--models", str(a), str(b), "--ratios", "0.7", "-0.3", "--save_to", str(out), *mode)
    assert code == 0, err
    la, lb, merged = load_lora(a), load_lora(b), load_lora(out)
    assert set(merged.modules) == set(la.modules) | set(lb.modules)
    for name, params in merged.modules.items():
        expected = sum(ratio * module_delta(name, f.modules[name]) for ratio, f in ((0.7, la), (-0.3, lb)) if name in f.modules)
        torch.testing.assert_close(module_delta(name, params), expected, atol=1e-4, rtol=1e-4)
    assert merged.metadata["ss_base_model_version"] == "sd_v1"
