"""Importing kohya_ss Fine-tuning configs: fine_tune for SD 1.x/2.x and sdxl_train for SDXL, as kohya_ss's
Finetuning tab starts them, in_json pointed at the metadata the config names, the metadata steps kohya_ss ran
before training reported as our tools' command lines (which make metadata the trainer's preflight accepts),
every key ruled, each kind on its own page.

Fixtures: v26 saves (all 216 keys of finetune_gui.save_configuration but file_path) and kohya_ss's own
test/config/finetune-AdamW.json (a 2024 save, v24: 109 keys, 0 values left out of the TOML).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from backend.messages import set_language
from backend.options import parse_args
from backend.options.schema import all_options
from backend.options.sd_scripts_flags import COMMAND_GROUPS, sd_scripts_flags
from gui.i18n import Translator
from gui.kohya_import.finetune_steps import DATASET_FIELDS, TE_RATES, TRAINING_COPY_NAMES
from gui.kohya_import.importer import KohyaImportError, convert_kohya_config, main, write_run_files
from gui.kohya_import.tables import FINETUNE_CHECKBOXES
from gui.training.lora_actions import import_kohya
from gui.training.training_kinds import FINETUNE
from tests.gui.kohya_import.test_kohya_import import ruled_keys

CONFIGS = Path(__file__).parents[1] / "data" / "kohya_configs"
FINETUNE_CONFIGS = ["sd15_finetune", "sdxl_finetune", "old_2024_finetune"]


def load(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text(encoding="utf-8"))


def reported(result) -> dict:
    return {entry.key: (entry.value, entry.reason, entry.detail) for entry in result.unmapped}


def command_line(detail: str) -> list[str]:
    """The tool command a metadata step's report ends with."""
    return shlex.split(detail.splitlines()[-1])


@pytest.mark.parametrize("name", FINETUNE_CONFIGS)
def test_every_key_has_a_rule_and_the_toml_passes_the_trainers_validation(name: str, tmp_path: Path) -> None:
    data = load(name)
    assert len(data) == (109 if name.startswith("old") else 216)
    result = convert_kohya_config(data)
    ruled = ruled_keys(result.command) | set(DATASET_FIELDS) | set(TRAINING_COPY_NAMES) | set(TE_RATES) | set(
        FINETUNE_CHECKBOXES) | set(all_options()) | {flag for script in COMMAND_GROUPS for flag in sd_scripts_flags(script)}
    assert set(data) - ruled == set()
    assert [e.key for e in result.unmapped if e.reason == "unknown"] == []
    assert result.network_type == "" and result.options["enable_bucket"] is True
    written = write_run_files(result, tmp_path / "run.toml")
    args = parse_args(result.command, ["--config_file", str(written[-1])])
    for option, value in result.options.items():
        if option != "sample_prompts":
            assert getattr(args, option) == value, option


def test_an_sd15_config_trains_fine_tune_from_the_latent_metadata_it_names() -> None:
    result = convert_kohya_config(load("sd15_finetune"))
    assert result.command == "fine_tune"
    options = result.options
    assert (options["train_data_dir"], options["in_json"]) == ("C:/ft/anime/img", "C:/ft/anime/meta_lat.json")
    assert (options["train_text_encoder"], options["learning_rate_te"], options["dataset_repeats"]) == (True, 2e-06, 10)
    steps = reported(result)
    assert steps["create_caption"][1] == steps["create_buckets"][1] == "prepare"
    assert "Fine-tuning page's metadata workflow" in steps["create_caption"][2]
    assert command_line(steps["create_caption"][2]) == [
        "python", "-m", "backend.tools.merge_captions_to_metadata", "C:/ft/anime/img", "C:/ft/anime/meta_cap.json",
        "--caption_extension", ".txt", "--full_path"]  # fmt: skip
    assert command_line(steps["create_buckets"][2])[2:] == [
        "backend.tools.prepare_buckets_latents", "C:/ft/anime/img", "C:/ft/anime/meta_cap.json",
        "C:/ft/anime/meta_lat.json", "C:/models/v1-5-pruned-emaonly.safetensors", "--batch_size", "1",
        "--max_resolution", "512,512", "--min_bucket_reso", "256", "--max_bucket_reso", "1024",
        "--mixed_precision", "fp16", "--full_path"]  # fmt: skip
    assert "learning_rate_te1" not in steps  # the form's untouched SDXL rates: kohya_ss passes them only for SDXL


def test_an_sdxl_config_trains_sdxl_train_with_its_rates_and_says_what_flip_aug_did() -> None:
    data = load("sdxl_finetune")
    result = convert_kohya_config(data)
    assert result.command == "sdxl_train" and result.options["in_json"] == "/train/ft_xl/meta_cap.json"
    assert (result.options["learning_rate_te1"], result.options["learning_rate_te2"]) == (1e-06, 0.0)  # v26 passes 0
    assert result.options["no_half_vae"] is True and "learning_rate_te" not in result.options
    latents = command_line(reported(result)["create_buckets"][2])
    assert latents[latents.index("--mixed_precision") + 1] == "no" and latents[-1] == "--flip_aug"
    assert "--full_path" not in latents
    assert any("so it trained about 3 epochs; this import trains max_train_epochs = 6" in w for w in result.warnings)
    assert result.options["max_train_epochs"] == 6
    # Before v26 kohya_ss left 0 out, so sd-scripts used learning_rate: the import does the same.
    before_v26 = {key: value for key, value in data.items() if not key.startswith(("lumina_", "anima_"))}
    assert "learning_rate_te2" not in convert_kohya_config(before_v26).options
    frozen = convert_kohya_config({**data, "train_text_encoder": False})
    assert reported(frozen)["learning_rate_te1"][2] == "train_text_encoder is off, so no text encoder trains"


def test_a_2024_config_and_the_training_copys_names() -> None:
    data = load("old_2024_finetune")
    result = convert_kohya_config(data)
    assert result.command == "fine_tune" and result.options["in_json"] == "./test/meta-1_cap5.json"
    steps = reported(result)
    assert "'./test/img/10_darius kawasaki person'" in steps["create_caption"][2]  # quoted for the shell
    assert steps["bucket_reso_steps"][1] == "invalid" and steps["learning_rate_te1"][1] == "not_used"
    # The copy kohya_ss saves beside a trained model names the checkboxes as train_model does.
    copy = {key: value for key, value in data.items() if key not in ("create_caption", "create_buckets")}
    copy.update(generate_caption_database=False, generate_image_buckets=False, batch_size="8")
    steps = reported(convert_kohya_config(copy))
    assert "create_caption" not in steps and "create_buckets" not in steps
    assert steps["batch_size"][1] == "not_used"


def test_with_a_dataset_config_the_metadata_is_not_used() -> None:
    result = convert_kohya_config({**load("sd15_finetune"), "dataset_config": str(CONFIGS / "dataset.toml")})
    assert "in_json" not in result.options and "train_data_dir" not in result.options
    steps = reported(result)
    assert steps["image_folder"][1] == steps["train_dir"][1] == "not_used"
    assert "kohya_ss skips the metadata steps" in steps["train_dir"][2]
    assert "create_caption" not in steps  # the form's value (on): nothing to say


def test_sd3_and_flux_take_the_tabs_own_text_encoder_keys() -> None:
    """The DreamBooth and Finetuning tabs save SD3's encoders as clip_l/t5xxl, FLUX.1's as flux1_clip_l/flux1_t5xxl;
    the Finetuning tab tests sd3_checkbox before flux1_checkbox."""
    data = {**load("sd15_finetune"), "pretrained_model_name_or_path": "/m/sd3.5_large.safetensors",
            "clip_l": "/m/sd3_clip_l.safetensors", "t5xxl": "/m/sd3_t5xxl.safetensors",
            "flux1_clip_l": "/m/flux_clip_l.safetensors", "flux1_t5xxl": "/m/flux_t5xxl.safetensors"}  # fmt: skip
    sd3 = convert_kohya_config({**data, "sd3_checkbox": True, "flux1_checkbox": True})
    assert sd3.command == "sd3_train" and sd3.model_type == "sd3_large"
    assert (sd3.options["clip_l"], sd3.options["t5xxl"]) == ("/m/sd3_clip_l.safetensors", "/m/sd3_t5xxl.safetensors")
    flux = convert_kohya_config({**data, "flux1_checkbox": True})
    assert flux.command == "flux_train" and flux.options["clip_l"] == "/m/flux_clip_l.safetensors"
    assert reported(flux)["clip_l"][1:] == ("not_used", "SD 3.5 only; kohya_ss ignores it here")


def test_each_kind_of_config_imports_on_its_own_page() -> None:
    finetune = load("sd15_finetune")
    for page in ("lora", "dreambooth"):
        with pytest.raises(KohyaImportError, match="a kohya_ss Fine-tuning config: import it on the Fine-tuning page"):
            convert_kohya_config(finetune, page)
    for name, tab in (("sd15_standard", "LoRA"), ("sd15_dreambooth", "DreamBooth")):
        with pytest.raises(KohyaImportError, match=f"a kohya_ss {tab} config: import it on the {tab} page"):
            convert_kohya_config(load(name), "finetune")


def test_the_finetune_page_imports_into_its_form(tmp_path: Path) -> None:
    imported = import_kohya(str(CONFIGS / "sdxl_finetune.json"), Translator("en"), tmp_path, kind=FINETUNE)
    assert imported.tab is not None, imported.message
    assert imported.tab.model_type == "sdxl" and imported.tab.command == "sdxl_train"
    assert imported.tab.run_options()["in_json"] == "/train/ft_xl/meta_cap.json"
    assert "Metadata steps kohya_ss ran before training" in imported.message
    set_language("ja")
    try:
        refused = import_kohya(str(CONFIGS / "sdxl_finetune.json"), Translator("ja"), tmp_path)  # the LoRA page
    finally:
        set_language(None)
    assert refused.tab is None and "Fine-tuning のページでインポートしてください" in refused.message


def test_the_reported_tools_make_metadata_the_cli_run_passes_preflight_with(tiny, tmp_path: Path, capsys) -> None:
    """The commands the report names, run as written, then the CLI's TOML through fine_tune's preflight."""
    from backend.tools.merge_captions_to_metadata import main as merge_captions
    from backend.tools.prepare_buckets_latents import main as prepare_latents
    from backend.training.command import run_command
    from tests.end_to_end.helpers import make_images

    images = tmp_path / "img"
    make_images(images, 2, caption="a photo of a cat")
    config = {**load("sd15_finetune"), "pretrained_model_name_or_path": str(tiny.get("sd15").path),
              "image_folder": str(images), "train_dir": str(tmp_path), "output_dir": str(tmp_path / "out"),
              "logging_dir": "", "max_resolution": "64,64", "min_bucket_reso": "64", "max_bucket_reso": "128",
              "mixed_precision": "no"}  # fmt: skip
    steps = reported(convert_kohya_config(config))
    for key, tool in (("create_caption", merge_captions), ("create_buckets", prepare_latents)):
        argv = command_line(steps[key][2])
        assert argv[:3] == ["python", "-m", f"backend.tools.{tool.__module__.rsplit('.', 1)[-1]}"]
        tool(argv[3:])
    assert "a photo of a cat" in (tmp_path / "meta_lat.json").read_text(encoding="utf-8")
    (tmp_path / "ft.json").write_text(json.dumps(config), encoding="utf-8")
    toml = tmp_path / "run.toml"
    assert main([str(tmp_path / "ft.json"), "--toml", str(toml)]) == 0
    assert f"-m backend.fine_tune --config_file {toml}" in capsys.readouterr().out
    assert run_command("fine_tune", ["--config_file", str(toml), "--preflight"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["errors"] == [] and report["dataset"]["total_steps"] == 4 * 2 * 10 // 2
