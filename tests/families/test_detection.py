"""Each family tells its own files: folder layouts from model_index.json, the families' detections, and
a family added by its declaration alone is detected, checked and named in the messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from backend import families
from backend.families.declaration import FamilyDeclaration, PredictionFacts
from backend.families.detection import Detection, FolderConfigs, Recognised, Shapes
from backend.models import detect, folder_checks
from backend.models.detect import ModelMismatchError, check_model_flags, detect_model
from backend.models.errors import ModelFileError


@pytest.mark.parametrize("index, family", [
    ({"_class_name": "StableDiffusionPipeline", "text_encoder": ["transformers", "CLIPTextModel"]}, "sd1"),
    ({"_class_name": "StableDiffusionXLPipeline", "text_encoder": ["transformers", "CLIPTextModel"]}, "sdxl"),
    ({"_class_name": "StableDiffusionPipeline", "text_encoder": [], "text_encoder_2": []}, "sdxl"),
    ({"text_encoder": []}, "sd1"),
    ({}, "sd1"),  # nothing tells: the first family's layout, whose parts are then checked
    # FLUX.1 and SDXL folders both list two text encoders: the pipeline class decides.
    ({"_class_name": "FluxPipeline", "text_encoder": [], "text_encoder_2": [], "transformer": []}, "flux_dev"),
])
def test_a_folder_index_names_its_family_layout(index: dict, family: str) -> None:
    assert families.of_pipeline_index(index).name == family


def test_joint_labels() -> None:
    assert families.joint_label(families.for_command("fine_tune")) == "SD 1.x/2.x"
    assert families.joint_label(families.for_command("sdxl_train")) == "SDXL"


def test_an_sdxl_refiner_folder_is_refused_before_its_parts_are_checked(tmp_path: Path) -> None:
    index = {"_class_name": "StableDiffusionXLImg2ImgPipeline", "text_encoder": [None, None],
             "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"]}
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelMismatchError, match="looks like an SDXL refiner"):
        detect_model(tmp_path)


def _toy_keys(shapes: Shapes, path: str) -> Recognised | None:
    return Recognised("toy", "a toy text encoder") if any(key.startswith("toy_model.") for key in shapes) else None


TOY = FamilyDeclaration(
    name="toy", label="Toy 1", implementation="tests.families.toy", commands={"lora": "toy_network", "finetune": "toy"},
    epsilon=PredictionFacts("toy_v1", "toy-v1", 256, "toy"), cross_attention_width=4096,
    text_encoder_folders=("toy_encoder",), pipeline_class_prefix="Wan", implied_options={"v2": True},
    detection=Detection(from_keys=_toy_keys, from_folder=lambda configs: Recognised("toy", "")),
)


@pytest.fixture
def toy_family(monkeypatch: pytest.MonkeyPatch) -> None:
    declarations = (*families.DECLARATIONS, TOY)
    monkeypatch.setattr(families, "DECLARATIONS", declarations)
    monkeypatch.setattr(families, "_BY_NAME", {d.name: d for d in declarations})
    for module in (detect, folder_checks):  # they hold the registry's tuple by name
        monkeypatch.setattr(module, "DECLARATIONS", declarations)


@pytest.mark.usefixtures("toy_family")
def test_a_declared_family_is_detected_and_checked(tmp_path: Path) -> None:
    save_file({"toy_model.weight": torch.zeros(2)}, str(tmp_path / "toy.safetensors"))
    info = detect_model(tmp_path / "toy.safetensors")
    assert (info.family, info.label, info.evidence) == ("toy", "Toy 1", "a toy text encoder")
    with pytest.raises(ModelMismatchError, match=r"an Toy 1 model \(a toy text encoder\), not SD 1\.x/2\.x; use the "
                       r"Toy 1 commands \(toy_network, toy\) with --v2\.$"):
        check_model_flags(info, command="fine_tune", v2=True, v_parameterization=False)
    with pytest.raises(ModelMismatchError, match=r"but --v2 was not given; add --v2\.$"):
        check_model_flags(info, command="toy", v2=False, v_parameterization=False)
    assert check_model_flags(info, command="toy_network", v2=True, v_parameterization=False) == []
    # A U-Net alone, by its declared cross-attention width.
    key = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    save_file({key: torch.zeros(8, 4096)}, str(tmp_path / "unet.safetensors"))
    assert detect_model(tmp_path / "unet.safetensors").family == "toy"


@pytest.mark.usefixtures("toy_family")
def test_a_declared_pipeline_class_is_no_longer_refused(tmp_path: Path) -> None:
    """WanPipeline folders are refused as unsupported until a family declares them; then their parts,
    by the family's own component folders, are checked."""
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    with pytest.raises(ModelFileError, match="the toy_encoder/ folder is missing"):
        folder_checks.check_diffusers_folder(tmp_path)


def test_folder_configs_tell_sd2_from_sd1() -> None:
    sd = families.declaration("sd1").detection
    assert sd is families.declaration("sd2").detection
    gelu = FolderConfigs({}, {}, ({"hidden_act": "gelu"},))
    linear = FolderConfigs({}, {"use_linear_projection": True}, ({"hidden_act": "quick_gelu"},))
    assert [sd.from_folder(c).family for c in (gelu, linear, FolderConfigs({}, {}, ({},)))] == ["sd2", "sd2", "sd1"]


@pytest.mark.parametrize("decl", families.DECLARATIONS, ids=lambda d: d.name)
def test_each_declaration_carries_what_detecting_loading_and_saving_ask(decl: FamilyDeclaration) -> None:
    assert decl.detection is not None and decl.pipeline_class_prefix
    count = len(decl.text_encoder_folders)
    assert len(decl.tokenizer_folders) == len(decl.hub_tokenizers) == count
    # Single files hold every text encoder, or none (FLUX.1's are files of their own, passed by `part_flags`;
    # video families load from diffusers folders).
    assert len(decl.original_text_encoders) == (0 if decl.part_flags or decl.is_video else count)
    assert set(decl.part_flags.values()) <= {*decl.text_encoder_folders, "vae"}
    for facts in (decl.epsilon, decl.v_prediction):
        if facts is not None:  # its shipped config sets lie in its own package
            assert decl.configs_folder is not None
            assert (decl.configs_folder / facts.config_set / "model_index.json").is_file()
            assert families.of_config_set(facts.config_set) is decl
