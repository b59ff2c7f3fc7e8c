"""Importing kohya_ss LECO configs: train_leco for SD 1.x/2.x and sdxl_train_leco for SDXL, as kohya_ss's LECO tab
(leco_gui.py, v26) starts them; every key ruled, the keys kohya_ss passes only without SDXL, each kind on its own
page, and the command-line import's TOML through the LECO preflight on tiny models.

Fixtures: sd15_leco.json and sdxl_leco.json, reconstructed from leco_gui.save_configuration's 68 keys and the form's
defaults (tests/gui/data/kohya_configs/README.md).
The page import is tested through `lora_actions.import_kohya`, the function the LECO page's import button calls,
with the page's own kind (the button's wiring is the other pages' too: tests/gui/test_browser*.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.options import parse_args
from backend.options.schema import all_options
from backend.options.sd_scripts_flags import COMMAND_GROUPS, sd_scripts_flags
from gui.i18n import Translator
from gui.kohya_import import convert
from gui.kohya_import.importer import KohyaImportError, convert_kohya_config, main, write_run_files
from gui.training.lora_actions import import_kohya
from gui.training.training_kinds import LECO
from tests.gui.kohya_import.test_kohya_import import ruled_keys

CONFIGS = Path(__file__).parents[1] / "data" / "kohya_configs"
# (name, command, network type)
LECO_CONFIGS = [("sd15_leco", "train_leco", "Standard"), ("sdxl_leco", "sdxl_train_leco", "LoCon")]
SAVED_KEYS = 68  # leco_gui.save_configuration's parameters but file_path


def load(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text(encoding="utf-8"))


def report(result) -> dict:
    return {entry.key: (entry.value, entry.reason, entry.detail) for entry in result.unmapped}


@pytest.mark.parametrize(("name", "command", "network_type"), LECO_CONFIGS)
def test_every_key_has_a_rule_and_the_toml_passes_the_trainers_validation(
    name: str, command: str, network_type: str, tmp_path: Path
) -> None:
    data = load(name)
    assert len(data) == SAVED_KEYS and list(data) == sorted(data)  # as kohya_ss saves them
    result = convert_kohya_config(data)
    assert result.command == command and result.network_type == network_type
    ruled = ruled_keys(command) | set(all_options()) | {
        flag for script in COMMAND_GROUPS for flag in sd_scripts_flags(script)
    }  # (another command's option, ours or sd-scripts': reported as such)
    assert set(data) - ruled == set()
    assert [e.key for e in result.unmapped if e.reason == "unknown"] == []
    written = write_run_files(result, tmp_path / "run.toml")
    args = parse_args(command, ["--config_file", str(written[-1])])
    for option, value in result.options.items():
        assert getattr(args, option) == value, option
    assert args.prompts_file == data["prompts_file"]


def test_an_sd15_config_keeps_its_prompt_file_and_leco_settings() -> None:
    result = convert_kohya_config(load("sd15_leco"))
    options = result.options
    assert options["prompts_file"] == "/data/leco/erase_vangogh.toml"
    assert "max_denoising_steps" not in options and "leco_denoise_guidance_scale" not in options  # 40 and 3.0
    assert (options["network_dim"], options["learning_rate"], options["unet_lr"]) == (4, 0.0002, 0.0002)
    assert options["optimizer_type"] == "AdamW8bit" and options["sdpa"] is True and options["clip_skip"] == 2
    assert (options["max_train_steps"], options["save_every_n_steps"], options["seed"]) == (600, 200, 42)
    assert "network_module" not in options and "network_train_unet_only" not in options
    assert result.launch == {"mixed_precision": "bf16", "num_processes": 1, "num_machines": 1,
                             "num_cpu_threads_per_process": 2}  # fmt: skip
    assert report(result) == {} and result.warnings == []  # the form's defaults: dropped silently


def test_an_sdxl_config_trains_with_sdxl_train_leco_and_reports_what_kohya_ss_did_not_pass() -> None:
    result = convert_kohya_config(load("sdxl_leco"))
    options = result.options
    assert (options["max_denoising_steps"], options["leco_denoise_guidance_scale"]) == (50, 5.5)
    assert options["network_args"] == ["conv_dim=8", "conv_alpha=4"]  # kohya_ss's split, quotes removed
    assert (options["network_dim"], options["network_alpha"], options["network_dropout"]) == (16, 8.0, 0.1)
    assert options["optimizer_args"] == ["weight_decay=0.01", "betas=0.9,0.999"]
    assert (options["lr_scheduler"], options["lr_warmup_steps"], options["lr_scheduler_num_cycles"]) == (
        "cosine_with_restarts", 50, 3)
    assert (options["noise_offset"], options["min_snr_gamma"], options["unet_lr"]) == (0.05, 5.0, 5e-05)
    assert "clip_skip" not in options and "v2" not in options
    assert report(result) == {
        "clip_skip": (2, "not_used", "kohya_ss does not pass it to sdxl_train_leco"),
        "dynamo_use_fullgraph": (True, "launch", "accelerate launch setting"),
        "extra_accelerate_launch_args": ("--same_network", "launch", "accelerate launch setting"),
        "wandb_api_key": ("<hidden>", "secret", "never carried over; enter it again where it is needed"),
    }
    assert result.launch["num_cpu_threads_per_process"] == 4


def test_the_leco_rules() -> None:
    sd15, sdxl = load("sd15_leco"), load("sdxl_leco")
    v_pred = convert_kohya_config({**sd15, "v2": True, "v_parameterization": True})
    assert v_pred.options["v2"] is True and v_pred.options["v_parameterization"] is True
    ignored = convert_kohya_config({**sdxl, "v2": True, "v_parameterization": True})
    assert {key: reason for key, (_, reason, _) in report(ignored).items() if key.startswith("v")} == {
        "v2": "not_used", "v_parameterization": "not_used"}
    assert not {"v2", "v_parameterization"} & set(ignored.options)
    # A warmup with the constant scheduler: kohya_ss's LECO tab passes it and sd-scripts stops.
    constant = convert_kohya_config({**sd15, "lr_warmup_steps": 20})
    assert "lr_warmup_steps" not in constant.options
    assert any("lr_scheduler constant takes none (kohya_ss's LECO tab passes it" in w for w in constant.warnings)
    no_prompts = convert_kohya_config({**sd15, "prompts_file": ""})
    assert "prompts_file" not in no_prompts.options
    assert any(w.startswith("prompts_file is empty (kohya_ss refuses to start without one)") for w in no_prompts.warnings)
    # The form's slider starts at 1 denoising step; sd-scripts (and this trainer) need 2.
    one_step = convert_kohya_config({**sd15, "max_denoising_steps": 1})
    assert report(one_step)["max_denoising_steps"][1] == "invalid" and "max_denoising_steps" not in one_step.options
    lycoris = convert_kohya_config({**sd15, "network_module": "lycoris.kohya", "network_args": "algo=loha conv_dim=4"})
    assert lycoris.network_type == "LyCORIS/LoHa" and lycoris.options["network_module"] == "lycoris.kohya"
    off = convert_kohya_config({**sd15, "xformers": "none", "unet_lr": 0})
    assert not {"sdpa", "xformers", "unet_lr"} & set(off.options) and report(off) == {}


def test_each_kind_imports_on_its_own_page(monkeypatch: pytest.MonkeyPatch) -> None:
    leco = load("sd15_leco")
    assert convert.config_kind(leco) == "leco"  # it saves network_dim too, as a LoRA config does
    for page in ("lora", "textual_inversion"):
        with pytest.raises(KohyaImportError, match="a kohya_ss LECO config: import it on the LECO page"):
            convert_kohya_config(leco, page)
    with pytest.raises(KohyaImportError, match="a kohya_ss LoRA config: import it on the LoRA page"):
        convert_kohya_config(json.loads((CONFIGS / "sd15_standard.json").read_text("utf-8")), "leco")
    monkeypatch.setattr(convert, "IMPORTED_KINDS", ("lora", "dreambooth"))
    with pytest.raises(KohyaImportError, match="LECO config: only LoRA, DreamBooth configs import so far"):
        convert_kohya_config(leco)


def test_the_page_import_fills_a_leco_form(tmp_path: Path) -> None:
    """What the LECO page's import button calls."""
    imported = import_kohya(str(CONFIGS / "sdxl_leco.json"), Translator("en"), tmp_path, kind=LECO)
    assert imported.tab is not None, imported.message
    assert imported.tab.model_type == "sdxl" and imported.tab.command == "sdxl_train_leco"
    assert imported.tab.network_type == "LoCon" and imported.tab.network_fields == {"conv_dim": 8, "conv_alpha": 4.0}
    run = imported.tab.run_options()
    assert (run["prompts_file"], run["max_denoising_steps"], run["network_module"]) == (
        "/data/leco/slider_age.toml", 50, "networks.lora")
    assert "Imported" in imported.message and "extra_accelerate_launch_args" in imported.message
    assert Translator("ja").t("ui.kohya_config_info_leco").startswith("kohya_ss GUI が保存した LECO 設定")


@pytest.mark.parametrize(("name", "arch", "command"), [("sd15_leco", "sd15", "train_leco"),
                                                      ("sdxl_leco", "sdxl", "sdxl_train_leco")])
def test_the_cli_writes_a_run_toml_that_passes_the_leco_preflight(
    name: str, arch: str, command: str, tiny, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend.training.command import run_command

    prompts = tmp_path / "prompts.toml"
    prompts.write_text('[[prompts]]\ntarget = "van gogh"\naction = "erase"\nresolution = 64\n', encoding="utf-8")
    config = {**load(name), "pretrained_model_name_or_path": str(tiny.get(arch).path), "prompts_file": str(prompts),
              "output_dir": str(tmp_path / "out"), "logging_dir": str(tmp_path / "log"),
              "log_with": "tensorboard"}  # fmt: skip  (the wandb package is not installed here)
    (tmp_path / "leco.json").write_text(json.dumps(config), encoding="utf-8")
    toml = tmp_path / "leco.toml"
    assert main([str(tmp_path / "leco.json"), "--toml", str(toml)]) == 0
    assert f"-m backend.{command} --config_file {toml}" in capsys.readouterr().out
    assert run_command(command, ["--config_file", str(toml), "--preflight"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["errors"] == [] and out["leco"] == {"prompts_file": str(prompts), "settings": 1}
