"""Family detection from keys/configs and the errors for flags that do not fit the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from backend.families.loaded import get_spec
from backend.models.detect import ModelMismatchError, check_model_flags, detect_model
from tests.tiny_models import TinyModels


@pytest.mark.parametrize(
    "arch, family, v_prediction",
    [("sd15", "sd1", False), ("sd2", "sd2", False), ("sd2-v", "sd2", True), ("sdxl", "sdxl", False)],
)
@pytest.mark.parametrize("single_file", [False, True])
def test_detects_family(
    arch: str, family: str, v_prediction: bool, single_file: bool, tiny: TinyModels
) -> None:
    info = detect_model(tiny.get(arch, single_file).path)
    assert info.family == family
    assert info.v_prediction is v_prediction
    assert info.format == ("safetensors" if single_file else "diffusers")


def test_foreign_file_without_metadata(tiny: TinyModels, tmp_path: Path) -> None:
    """Real files carry no configs: family from keys, v-prediction unknown."""
    state = load_file(str(tiny.get("sd2", True).path))
    save_file(state, str(tmp_path / "foreign.safetensors"))
    info = detect_model(tmp_path / "foreign.safetensors")
    assert (info.family, info.v_prediction, info.configs) == ("sd2", None, None)
    save_file(state, str(tmp_path / "marked.safetensors"), metadata={"modelspec.prediction_type": "v"})
    assert detect_model(tmp_path / "marked.safetensors").v_prediction is True


def test_unet_only_file_by_cross_attention_width(tmp_path: Path) -> None:
    key = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    save_file({key: torch.zeros(320, 1024)}, str(tmp_path / "unet.safetensors"))
    assert detect_model(tmp_path / "unet.safetensors").family == "sd2"


def test_unrecognised_files(tmp_path: Path) -> None:
    save_file({"foo.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelMismatchError, match="not a recognised Stable Diffusion checkpoint"):
        detect_model(tmp_path / "other.safetensors")
    save_file(
        {"conditioner.embedders.0.model.ln_final.weight": torch.zeros(2)},
        str(tmp_path / "refiner.safetensors"),
    )
    with pytest.raises(ModelMismatchError, match="refiner"):
        detect_model(tmp_path / "refiner.safetensors")
    with pytest.raises(ModelMismatchError, match="model_index.json"):
        detect_model(tmp_path)


@pytest.mark.parametrize(
    "arch, flags, message",
    [
        ("sd15", {"command": "train_network", "v2": True}, r"SD 1\.x model .*but --v2 was given; remove --v2"),
        (
            "sd15",
            {"command": "sdxl_train_network", "v2": False},
            r"SD 1\.x model .*not SDXL; use the SD 1\.x/2\.x commands",
        ),
        ("sd2", {"command": "train_network", "v2": False}, r"SD 2\.x model .*OpenCLIP.*add --v2"),
        ("sd2", {"command": "sdxl_train_network", "v2": False}, r"not SDXL.*with --v2"),
        (
            "sdxl",
            {"command": "train_network", "v2": False},
            r"SDXL model .*use the SDXL commands|train it with the SDXL",
        ),
        ("sdxl", {"command": "sdxl_train_network", "v2": True}, r"SDXL model .*remove --v2"),
    ],
)
def test_flag_mismatches_are_errors(arch: str, flags: dict, message: str, tiny: TinyModels) -> None:
    info = detect_model(tiny.get(arch, single_file=True).path)
    with pytest.raises(ModelMismatchError, match=message):
        check_model_flags(info, v_parameterization=False, **flags)


def test_matching_flags_pass_and_v_mismatch_warns(tiny: TinyModels) -> None:
    assert (
        check_model_flags(
            detect_model(tiny.get("sd15").path), command="train_network", v2=False, v_parameterization=False
        )
        == []
    )
    assert (
        check_model_flags(
            detect_model(tiny.get("sdxl").path), command="sdxl_train_network", v2=False, v_parameterization=False
        )
        == []
    )
    info = detect_model(tiny.get("sd2-v").path)
    assert check_model_flags(info, command="train_network", v2=True, v_parameterization=True) == []
    (warning,) = check_model_flags(info, command="train_network", v2=True, v_parameterization=False)
    assert "--v_parameterization" in warning


def test_spec_refuses_other_family(tiny: TinyModels) -> None:
    with pytest.raises(ModelMismatchError, match="SD 1.x model .* not SDXL"):
        get_spec("sdxl").load(tiny.get("sd15").path)


def test_file_that_does_not_fit_the_shipped_config_is_a_clear_error(tiny: TinyModels, tmp_path: Path) -> None:
    """Without stored configs a file is read with the real architecture; tiny widths cannot fit."""
    model = tiny.get("sd15", single_file=True)
    save_file(load_file(str(model.path)), str(tmp_path / "bare.safetensors"))
    with pytest.raises(ValueError, match="U-Net weights do not match its architecture config"):
        get_spec("sd1").load(tmp_path / "bare.safetensors", tokenizer_cache_dir=model.tokenizer_cache_dir)
