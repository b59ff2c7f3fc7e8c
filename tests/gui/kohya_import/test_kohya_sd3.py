"""Importing kohya_ss GUI SD3 LoRA configs (sd3_checkbox): SD 3.5 Medium or Large as the model file (or its name)
says, the SD3 section under sd-scripts' names (sd3_clip_l -> clip_l, sd3_t5_dropout_rate -> t5_dropout_rate, ...)
as our options, and what this trainer does not implement in the report with its reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from backend.options import parse_args
from gui.i18n import Translator
from gui.kohya_import.importer import convert_kohya_config, format_report, write_run_files
from gui.training import lora_actions
from tests.end_to_end.helpers import make_images

CONFIGS = Path(__file__).parents[1] / "data" / "kohya_configs"
LARGE = "sd35_large_lora"  # kohya_ss v26 save: SD3 ticked, a Large model, text-encoder dropout, cached outputs
T = Translator("en")


def load(name: str = LARGE, **changes: Any) -> dict[str, Any]:
    return {**json.loads((CONFIGS / f"{name}.json").read_text(encoding="utf-8")), **changes}


def unmapped(result) -> dict[str, tuple[Any, str]]:
    return {entry.key: (entry.value, entry.reason) for entry in result.unmapped}


def details(result) -> dict[str, str]:
    return {entry.key: entry.detail for entry in result.unmapped}


def test_an_sd3_config_imports_its_sd3_section(tmp_path: Path) -> None:
    result = convert_kohya_config(load())
    assert (result.command, result.model_type, result.network_type) == ("sd3_train_network", "sd3_large", "Standard")
    assert result.warnings[0].startswith("sd3_checkbox -> model type SD 3.5 Large") and '"large"' in result.warnings[0]
    options = result.options
    assert (options["clip_l"], options["clip_g"], options["t5xxl"]) == (
        "/models/clip_l.safetensors", "/models/clip_g.safetensors", "/models/t5xxl_fp16.safetensors")
    assert (options["clip_l_dropout_rate"], options["clip_g_dropout_rate"], options["t5_dropout_rate"]) == (0.1, 0.1, 0.2)
    assert options["cache_text_encoder_outputs"] is True and options["cache_text_encoder_outputs_to_disk"] is True
    assert options["weighting_scheme"] == "logit_normal"  # kohya_ss's default, written; ours is uniform
    assert not {"logit_std", "mode_scale", "logit_mean", "t5xxl_max_token_length"} & set(options)
    report = unmapped(result)
    assert report["sd3_text_encoder_batch_size"] == (4, "not_implemented")
    assert options["disable_mmap_load_safetensors"] is True and "sd3_disable_mmap_load_safetensors" not in report
    for key in ("timestep_sampling", "guidance_scale", "apply_t5_attn_mask", "model_prediction_type"):
        assert report[key][1] == "not_used" and "FLUX.1 only" in details(result)[key], key
    assert not {"t5xxl_dtype", "save_clip", "sd3_clip_l", "clip_g"} & set(report), "at the form's default, or mapped"
    assert "sd3_checkbox -> model type SD 3.5 Large" in format_report(result)
    written = write_run_files(result, tmp_path / "run.toml")
    args = parse_args(result.command, ["--config_file", str(written[-1])])
    assert args.t5_dropout_rate == 0.2 and args.clip_g == "/models/clip_g.safetensors"


def test_the_position_options_and_what_sd_scripts_ignores() -> None:
    result = convert_kohya_config(load(
        sd3_enable_scaled_pos_embed=True, pos_emb_random_crop_rate=0.25, t5xxl_dtype="fp16", save_t5xxl=True,
        t5xxl_lr=5e-5, text_encoder_lr=1e-5, blocks_to_swap=4,
    ))  # fmt: skip
    assert result.options["enable_scaled_pos_embed"] is True and result.options["pos_emb_random_crop_rate"] == 0.25
    report = unmapped(result)
    assert report["t5xxl_dtype"] == ("fp16", "not_used") and "[DOES NOT WORK]" in details(result)["t5xxl_dtype"]
    assert report["save_t5xxl"] == (True, "not_used")
    assert report["t5xxl_lr"][1] == "not_used" and "lora_sd3" in details(result)["t5xxl_lr"]
    assert result.options["text_encoder_lr"] == [1e-5]
    assert "FLUX.1 only" not in details(result).get("blocks_to_swap", ""), "kohya_ss passes it for SD3 too"


@pytest.mark.parametrize(
    ("path", "model_type", "said"),
    [
        ("/models/sd3.5_medium.safetensors", "sd3_medium", '"medium" -> SD 3.5 Medium'),
        ("/models/my_finetune.safetensors", "sd3_medium", "its name does not say"),
    ],
)
def test_the_name_decides_when_the_file_is_not_here(path: str, model_type: str, said: str) -> None:
    result = convert_kohya_config(load(pretrained_model_name_or_path=path))
    assert result.model_type == model_type and said in result.warnings[0]


def test_the_model_file_decides_over_its_name(tiny, tmp_path: Path) -> None:
    misnamed = tmp_path / "sd3.5_large_v2.safetensors"  # a Medium MMDiT-X whatever its name says
    shutil.copy(tiny.get("sd3-medium", single_file=True).path, misnamed)
    result = convert_kohya_config(load(pretrained_model_name_or_path=str(misnamed)))
    assert result.model_type == "sd3_medium" and "SD 3.5 Medium" in result.warnings[0]
    assert "not on this machine" not in result.warnings[0]


def test_sd3_settings_in_an_sd_config_are_sd3_only() -> None:
    result = convert_kohya_config(load("sd15_standard", sd3_t5_dropout_rate=0.3, weighting_scheme="mode"))
    report = unmapped(result)
    assert report["sd3_t5_dropout_rate"] == (0.3, "not_used") and report["weighting_scheme"] == ("mode", "not_used")
    assert "SD 3.5 only" in details(result)["weighting_scheme"] and result.command == "train_network"


def test_an_imported_sd3_config_passes_preflight_from_the_tab(tiny, tmp_path: Path) -> None:
    """The GUI's import button, then preflight with this machine's tiny SD 3.5 Large and images."""
    imported = lora_actions.import_kohya(str(CONFIGS / f"{LARGE}.json"), T, prompts_dir=tmp_path)
    assert imported.tab is not None, imported.message
    tab = imported.tab
    assert (tab.model_type, tab.command) == ("sd3_large", "sd3_train_network")
    model = tiny.get("sd3-large", single_file=True)
    make_images(tmp_path / "img" / "1_style", 2)
    tab.options.update(
        pretrained_model_name_or_path=str(model.path), train_data_dir=str(tmp_path / "img"),
        output_dir=str(tmp_path / "out"), logging_dir=str(tmp_path / "log"), resolution="64,64",
        tokenizer_cache_dir=str(model.tokenizer_cache_dir), clip_l=None, clip_g=None, t5xxl=None,
        t5xxl_max_token_length=16, fp8_base=False,
    )  # fmt: skip
    report = lora_actions.preflight(tab, T)
    assert report.startswith(f"### {T.t('ui.preflight_ok')}"), report
