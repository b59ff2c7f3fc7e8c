"""Importing kohya_ss GUI LoRA configs: realistic saves of several versions convert, the report says
where every unused key went and why, the TOML passes the trainer's validation, secrets never travel.

Fixtures (tests/gui/data/kohya_configs/) are kohya_ss saves: six v26 saves with all 287 keys (one
FLUX.1), one from January 2023 (46 keys, numbers as text, use_8bit_adam, xformers as a checkbox), a
v25 FLUX.1 save (test_kohya_flux.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backend.options import parse_args
from backend.options.schema import options_for
from backend.options.sd_scripts_flags import sd_scripts_flags
from gui.kohya_import import value_steps as kohya_import_convert
from gui.kohya_import.importer import (
    REASONS,
    ImportResult,
    KohyaImportError,
    convert_kohya_config,
    format_report,
    main,
    write_run_files,
)
from gui.kohya_import.network import NETWORK_TYPES, SHAPE_DEFAULTS
from gui.kohya_import.tables import (
    DERIVED,
    FLUX_ONLY,
    FLUX_RENAMED,
    LAUNCH_EXTRA_KEYS,
    LAUNCH_KEYS,
    NO_OPTION,
    RENAMED,
    SD3_ONLY,
    SDXL_RENAMED,
    SECRETS,
    SECTION_OF,
    SILENT,
)

REPO = Path(__file__).resolve().parents[3]
CONFIGS = Path(__file__).parents[1] / "data" / "kohya_configs"
HEAVY_MODULES = ("torch", "diffusers", "transformers", "gradio", "accelerate", "lycoris", "bitsandbytes")
V26 = ["sd15_standard", "sdxl_lycoris_locon", "sd15_lokr_prodigy", "sd2_loha", "sd15_kohya_dylora", "flux1_lora",
       "sd35_large_lora"]
IMPORTABLE = [*V26, "old_2023_use_8bit_adam", "flux1_v25_lora_ranks"]


def load(name: str) -> dict[str, Any]:
    data = json.loads((CONFIGS / f"{name}.json").read_text(encoding="utf-8"))
    if data.get("dataset_config"):
        data["dataset_config"] = str(CONFIGS / "dataset.toml")  # the trainer's validation reads it
    return data


def ruled_keys(command: str) -> set[str]:
    """The kohya_ss keys the import has a rule for when it trains with `command`: our options, the tables'."""
    return (
        set(options_for(command)) | set(RENAMED) | set(SDXL_RENAMED) | set(FLUX_RENAMED) | set(DERIVED)
        | set(LAUNCH_KEYS) | set(LAUNCH_EXTRA_KEYS) | set(SECRETS) | set(SILENT) | set(NO_OPTION) | set(SECTION_OF)
        | set(FLUX_ONLY) | set(SD3_ONLY) | set(SHAPE_DEFAULTS) | sd_scripts_flags(command)
    )  # fmt: skip


def convert(name: str) -> ImportResult:
    return convert_kohya_config(load(name))


def unmapped(result: ImportResult) -> dict[str, tuple[Any, str]]:
    return {entry.key: (entry.value, entry.reason) for entry in result.unmapped}


# --- every fixture ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", IMPORTABLE)
def test_the_written_toml_passes_the_trainers_validation(name: str, tmp_path: Path) -> None:
    result = convert(name)
    written = write_run_files(result, tmp_path / "run.toml")
    args = parse_args(result.command, ["--config_file", str(written[-1])])
    for option, value in result.options.items():
        if option != "sample_prompts":
            assert getattr(args, option) == value, option


@pytest.mark.parametrize("name", IMPORTABLE)
def test_only_values_that_differ_from_the_schema_defaults_are_kept(name: str) -> None:
    result = convert(name)
    schema = options_for(result.command)
    for option, value in result.options.items():
        default = schema[option].default
        assert value != (list(default) if isinstance(default, tuple) else default), option
    assert result.network_type in NETWORK_TYPES
    assert {entry.reason for entry in result.unmapped} <= set(REASONS)


@pytest.mark.parametrize("name", V26)
def test_every_kohya_ss_v26_key_has_a_rule(name: str) -> None:
    """The 287 keys kohya_ss v26 saves are each mapped, derived, or classified for the report."""
    data = load(name)
    assert len(data) == 287
    assert set(data) - ruled_keys(convert(name).command) == set()
    unknown = [entry.key for entry in convert(name).unmapped if entry.reason == "unknown"]
    assert [key for key in unknown if not key.startswith("--")] == []  # flags of additional_parameters aside


@pytest.mark.parametrize("name", ["sd15_standard", "flux1_lora"])
def test_secrets_never_travel(name: str, tmp_path: Path) -> None:
    data = load(name)
    secrets = [data[key] for key in SECRETS if data[key]]
    assert secrets
    data["additional_parameters"] = f"--wandb_api_key {data['huggingface_token']}"
    result = convert_kohya_config(data)
    for key in SECRETS:
        if data[key]:
            assert unmapped(result)[key] == ("<hidden>", "secret")
    assert unmapped(result)["--wandb_api_key"] == ("<hidden>", "secret")
    text = "".join(path.read_text() for path in write_run_files(result, tmp_path / "run.toml"))
    assert not any(secret in repr(result) or secret in text for secret in secrets)


# --- each fixture ----------------------------------------------------------------------------


def test_sd15_standard_lora(no_xformers) -> None:
    result = convert("sd15_standard")
    options = result.options
    assert result.command == "train_network" and result.network_type == "Standard"
    assert "network_module" not in options  # networks.lora is the default
    # As the LoRA tab writes them: the type's fields first (rank_dropout), then the rest as kohya_ss wrote it.
    assert options["network_args"] == [
        "rank_dropout=0.1", "down_lr_weight=1,1,1,1,1,1,1,1,1,1,1,1", "mid_lr_weight=1",
        "up_lr_weight=0,0,0,0,0,0,1,1,1,1,1,1", "block_lr_zero_threshold=0.1", "loraplus_unet_lr_ratio=4",
    ]  # fmt: skip
    assert options["network_dim"] == 32 and options["network_alpha"] == 16.0
    assert options["resolution"] == "512,512" and options["optimizer_type"] == "AdamW8bit"
    assert options["optimizer_args"] == ["weight_decay=0.01", "betas=0.9,0.999"]
    assert options["max_train_epochs"] == 10 and "max_train_steps" not in options  # from epoch
    assert options["lr_warmup_steps"] == 0.1  # lr_warmup 10 (%)
    assert options["text_encoder_lr"] == [5e-05] and options["unet_lr"] == 0.0001
    assert options["sdpa"] is True and "xformers" not in options  # xformers is not installed (no_xformers)
    assert options["clip_skip"] == 2 and options["seed"] == 1234 and options["mixed_precision"] == "fp16"
    assert options["max_data_loader_n_workers"] == 2 and options["persistent_data_loader_workers"] is True
    # additional_parameters, each flag through the schema
    # Text is stripped as the GUI form reads it ("photo, " -> "photo,"; sd-scripts joins it with a space).
    assert options["max_grad_norm"] == 0.5 and options["caption_prefix"] == "photo,"
    assert options["lowram"] is True  # --lowram in additional_parameters is an option of ours
    report = unmapped(result)
    assert "--lowram" not in report
    assert options["highvram"] is True and "highvram" not in report
    assert report["stop_text_encoder_training"] == (20, "not_used")
    assert result.sample_prompts_text.startswith("a photo of sks dog on the beach")
    assert result.launch == {
        "mixed_precision": "fp16", "num_processes": 1, "num_machines": 1, "num_cpu_threads_per_process": 2,
    }  # fmt: skip


def test_sdxl_lycoris_locon() -> None:
    result = convert("sdxl_lycoris_locon")
    options = result.options
    assert result.command == "sdxl_train_network" and result.network_type == "LyCORIS/LoCon"
    assert options["network_module"] == "lycoris.kohya"
    # As the LoRA tab writes them (one conversion for both imports): algo, the fields in the tab's order
    # with False flags left out (LyCORIS's default), then what no field covers, as kohya_ss wrote it.
    assert options["network_args"] == [
        "algo=locon", "preset=full", "conv_dim=8", "conv_alpha=4", "rank_dropout=0", "module_dropout=0",
        "dora_wd=True", "rank_dropout_scale=False",
    ]  # fmt: skip
    assert options["no_half_vae"] is True and options["cache_text_encoder_outputs"] is True
    assert options["sdpa"] is True and "xformers" not in options
    # text_encoder_lr 0 with a U-Net LR: U-Net only, as kohya_ss
    assert options["network_train_unet_only"] is True and "text_encoder_lr" not in options
    assert options["lr_warmup_steps"] == 100 and options["max_train_epochs"] == 20
    assert options["optimizer_args"] == ["scale_parameter=False", "relative_step=False", "warmup_init=False"]
    assert "clip_skip" not in options and "max_token_length" not in options  # 1 and 75: the defaults
    assert "max_grad_norm" not in options  # 0 is not passed by kohya_ss: sd-scripts clipped at 1.0
    assert any(w.startswith("max_grad_norm = 0") for w in result.warnings)
    assert result.launch == {
        "multi_gpu": True, "gpu_ids": "0,1", "num_processes": 2, "num_machines": 1, "main_process_port": 29501,
        "mixed_precision": "bf16", "num_cpu_threads_per_process": 4,
    }  # fmt: skip
    assert not any("cache_text_encoder_outputs needs" in w for w in result.warnings)


def test_lycoris_lokr_with_prodigy_and_a_dataset_config() -> None:
    result = convert("sd15_lokr_prodigy")
    options = result.options
    assert result.network_type == "LyCORIS/LoKr"
    assert options["network_args"] == [
        "algo=lokr", "preset=attn-mlp", "conv_dim=100000", "conv_alpha=1", "rank_dropout=0", "module_dropout=0",
        "factor=8", "use_cp=False", "rank_dropout_scale=False",
    ]  # fmt: skip
    # LyCORIS reads decompose_both's text, so kohya_ss's "decompose_both=False" trained with it on: said aloud.
    assert any(w.startswith("decompose_both=False is left out") for w in result.warnings)
    assert options["optimizer_type"] == "Prodigy" and options["learning_rate"] == 1.0
    assert "betas=0.9,0.99" in options["optimizer_args"]
    assert options["dataset_config"].endswith("dataset.toml")
    # kohya_ss ignores Epoch with a dataset config and no steps: sd-scripts' 1600 steps, said aloud
    assert "max_train_epochs" not in options and "max_train_steps" not in options
    assert any("kohya_ss ignored the epoch count" in w for w in result.warnings)
    assert options["network_dropout"] == 0.1 and options["scale_weight_norms"] == 1.0


def test_lycoris_loha_on_sd2_with_multires_noise_and_extra_flags() -> None:
    result = convert("sd2_loha")
    options = result.options
    assert result.network_type == "LyCORIS/LoHa" and options["v2"] and options["v_parameterization"]
    assert options["network_args"] == [
        "algo=loha", "preset=full", "conv_dim=4", "conv_alpha=1", "rank_dropout=0.05", "module_dropout=0.05",
        "use_tucker=True", "rank_dropout_scale=False",
    ]  # fmt: skip
    assert options["multires_noise_iterations"] == 8 and options["multires_noise_discount"] == 0.2
    assert "noise_offset" not in options and "xformers" not in options and "sdpa" not in options
    assert options["lr_scheduler_num_cycles"] == 3 and options["max_train_steps"] == 3000
    assert options["zero_terminal_snr"] is True and options["network_train_unet_only"] is True
    report = unmapped(result)
    assert report["noise_offset"] == (0.1, "not_used")
    assert options["masked_loss"] is True and "masked_loss" not in report
    assert options["weighted_captions"] is True and "weighted_captions" not in report
    assert report["--mystery_flag"] == ("3", "unknown")


def test_kohya_dylora() -> None:
    result = convert("sd15_kohya_dylora")
    assert result.network_type == "DyLoRA"
    assert result.options["network_module"] == "networks.dylora"
    # sd-scripts' DyLoRA never read rank_dropout; ours would refuse it
    assert result.options["network_args"] == ["unit=4", "conv_dim=32", "conv_alpha=16", "loraplus_lr_ratio=8"]
    assert any("rank_dropout left out" in w for w in result.warnings)
    assert "sdpa" in result.options and "mixed_precision" not in result.options  # "no" is the default
    mismatch = convert_kohya_config({**load("sd15_kohya_dylora"), "conv_dim": 1})  # kohya_ss's default
    assert any("conv_dim 1 differs from network_dim 32" in w for w in mismatch.warnings)


def test_old_config_with_use_8bit_adam_and_numbers_as_text(no_xformers) -> None:
    result = convert("old_2023_use_8bit_adam")
    options = result.options
    assert result.network_type == "Standard" and "network_args" not in options
    assert options["optimizer_type"] == "AdamW8bit"
    assert options["learning_rate"] == 0.0001 and options["unet_lr"] == 0.0001
    assert options["text_encoder_lr"] == [5e-05]
    assert options["lr_warmup_steps"] == 0.1 and options["max_train_epochs"] == 4 and options["seed"] == 1234
    assert options["max_token_length"] == 150 and options["max_data_loader_n_workers"] == 1
    assert options["sdpa"] is True and options["clip_skip"] == 2
    assert result.unmapped == []  # every old key found a home or was empty
    assert any("use_8bit_adam" in w for w in result.warnings)


@pytest.fixture
def no_xformers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without the xformers package, whatever this one has."""
    monkeypatch.setattr(kohya_import_convert, "xformers_installed", lambda: False)


@pytest.mark.parametrize("installed", [False, True])
def test_xformers_becomes_sdpa_where_xformers_is_not_installed(installed: bool, monkeypatch) -> None:
    """kohya_ss's "xformers" would fail here without the package; SDPA is the same memory-efficient attention."""
    monkeypatch.setattr(kohya_import_convert, "xformers_installed", lambda: installed)
    result = convert("sd15_lokr_prodigy")  # "xformers": "xformers", as in kohya_ss's own test configs
    note = [w for w in result.warnings if w.startswith('xformers = "xformers" -> sdpa')]
    if installed:
        assert result.options["xformers"] is True and "sdpa" not in result.options and not note
    else:
        assert result.options["sdpa"] is True and "xformers" not in result.options
        assert note and "not installed" in note[0] and f"\n  {note[0]}" in format_report(result)


def test_older_spellings() -> None:
    old = {
        "network_dim": 8, "pretrained_model_name_or_path": "m", "output_dir": "o", "use_wandb": "True",
        "xformers": False, "save_model_as": "same as source model", "lr_scheduler_num_cycles": "", "epoch": "3",
        "LoRA_type": "Standard", "max_train_epochs": "", "max_train_steps": "",
    }  # fmt: skip
    result = convert_kohya_config(old)
    assert result.options == {
        "pretrained_model_name_or_path": "m", "network_dim": 8, "max_train_epochs": 3, "lr_scheduler_num_cycles": 3,
        "log_with": "wandb", "output_dir": "o",
    }  # fmt: skip
    assert result.unmapped == []


def test_a_config_of_a_family_not_trained_here_is_refused_naming_it() -> None:
    with pytest.raises(KohyaImportError, match=r"HunyuanImage-2.1 .*hunyuan_image_checkbox"):
        convert_kohya_config({**load("flux1_lora"), "flux1_checkbox": False, "hunyuan_image_checkbox": True})


# --- conversions -----------------------------------------------------------------------------


def v26(**changes: Any) -> dict[str, Any]:
    return {**load("sd15_standard"), "additional_parameters": "", **changes}


@pytest.mark.parametrize(
    ("lora_type", "message"),
    [("Flux1 OFT", "networks.oft_flux"), ("LoRA-FA", "networks.lora_fa"), ("Lumina", "Lumina"),
     ("Hypernetwork", "unknown")],
)
def test_network_types_this_trainer_cannot_train_are_refused(lora_type: str, message: str) -> None:
    with pytest.raises(KohyaImportError, match=message):
        convert_kohya_config(v26(LoRA_type=lora_type))


def test_kohya_locon_and_the_legacy_locon_name() -> None:
    locon = convert_kohya_config(v26(LoRA_type="Kohya LoCon", conv_dim=8, conv_alpha=4, rank_dropout=0))
    assert locon.network_type == "LoCon" and locon.options["network_args"][:2] == [
        "conv_dim=8",
        "conv_alpha=4",
    ]
    legacy = convert_kohya_config(v26(LoRA_type="LoCon"))  # renamed LyCORIS/LoCon in 2023
    assert legacy.network_type == "LyCORIS/LoCon" and "algo=locon" in legacy.options["network_args"]


def test_native_kohya_lokr_becomes_lycoris_lokr() -> None:
    result = convert_kohya_config(
        v26(sdxl=True, LoRA_type="Kohya LoKr", conv_dim=0, factor=4, rank_dropout=0)
    )
    assert result.network_type == "LyCORIS/LoKr"
    assert result.options["network_args"] == ["algo=lokr", "preset=attn-mlp", "factor=4", "loraplus_unet_lr_ratio=4"]
    assert any("Kohya LoKr" in w for w in result.warnings)


def test_unused_network_fields_are_reported_unless_default() -> None:
    result = convert_kohya_config(v26(conv_dim=16, factor=-1, LyCORIS_preset="full"))
    report = unmapped(result)
    assert report["conv_dim"] == (16, "not_used")
    assert "factor" not in report and "LyCORIS_preset" not in report


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"lr_warmup": 5, "lr_warmup_steps": 50}, 50),  # the steps win, as in kohya_ss
        ({"lr_warmup": 100}, 0.99),  # a ratio must stay below 1
        ({"lr_warmup": 10, "lr_scheduler": "constant"}, None),  # constant takes no warmup
        ({"lr_warmup": 10, "optimizer": "AdamWScheduleFree"}, None),
    ],
)
def test_warmup(changes: dict[str, Any], expected: Any) -> None:
    assert convert_kohya_config(v26(**changes)).options.get("lr_warmup_steps") == expected


def test_learning_rates_choose_what_is_trained() -> None:
    te_only = convert_kohya_config(v26(unet_lr=0, text_encoder_lr=5e-5)).options
    assert te_only["network_train_text_encoder_only"] is True and "unet_lr" not in te_only
    none = convert_kohya_config(v26(unet_lr=0, text_encoder_lr=0, learning_rate=0))
    assert any("no learning rate" in w for w in none.warnings)


def test_sdxl_only_fields_are_ignored_for_sd15_as_kohya_ss_does() -> None:
    result = convert_kohya_config(v26(sdxl_no_half_vae=True, sdxl_cache_text_encoder_outputs=True))
    assert "no_half_vae" not in result.options and "cache_text_encoder_outputs" not in result.options
    assert unmapped(result)["sdxl_no_half_vae"] == (True, "not_used")


def test_clip_skip_on_sdxl_is_not_used_as_in_sd_scripts() -> None:
    result = convert_kohya_config(v26(sdxl=True, clip_skip=2))
    assert unmapped(result)["clip_skip"][1] == "not_used" and "clip_skip" not in result.options


def test_invalid_values_are_reported_and_left_out() -> None:
    result = convert_kohya_config(v26(bucket_reso_steps=1, lr_scheduler="rex"))
    report = unmapped(result)
    assert report["bucket_reso_steps"] == (1, "invalid") and report["lr_scheduler"] == ("rex", "invalid")
    assert "bucket_reso_steps" not in result.options and "lr_scheduler" not in result.options


def test_additional_parameters() -> None:
    text = '--optimizer_args weight_decay=0.1 "betas=0.9,0.99" --network_args conv_dim=4 --min_snr_gamma=3 --config_file x'
    result = convert_kohya_config(v26(additional_parameters=text))
    assert result.options["optimizer_args"] == ["weight_decay=0.1", "betas=0.9,0.99"]
    assert result.options["network_args"] == ["conv_dim=4"]  # the command line replaced the list
    assert result.options["min_snr_gamma"] == 3.0
    assert any("--network_args replaces network_args" in w for w in result.warnings)
    assert unmapped(result)["--config_file"][1] == "not_used"
    broken = convert_kohya_config(v26(additional_parameters='--caption_prefix "unclosed'))
    assert unmapped(broken)["additional_parameters"][1] == "invalid"


def test_not_a_lora_config() -> None:
    for data in ([1, 2], {"pretrained_model_name_or_path": "x", "train_data_dir": "y"}):
        with pytest.raises(KohyaImportError, match="not a kohya_ss LoRA, DreamBooth"):
            convert_kohya_config(data)  # type: ignore[arg-type]


# --- command line and weight -----------------------------------------------------------------


def test_cli_writes_the_toml_and_prints_the_report_and_command(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run.toml"
    assert main([str(CONFIGS / "sdxl_lycoris_locon.json"), "--toml", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "-m accelerate.commands.launch --quiet --multi_gpu" in printed
    assert f"-m backend.sdxl_train_network --config_file {out}" in printed
    assert "max_grad_norm = 0" in printed
    parse_args("sdxl_train_network", ["--config_file", str(out)])


def test_cli_exit_codes(tmp_path: Path, capsys) -> None:
    other = {**load("flux1_lora"), "flux1_checkbox": False, "hunyuan_image_checkbox": True}
    (tmp_path / "hunyuan.json").write_text(json.dumps(other))
    assert main([str(tmp_path / "hunyuan.json"), "--toml", str(tmp_path / "a.toml")]) == 2
    (tmp_path / "db.json").write_text('{"pretrained_model_name_or_path": "x"}')
    assert main([str(tmp_path / "db.json"), "--toml", str(tmp_path / "b.toml")]) == 2
    (tmp_path / "bad.json").write_text("{")
    assert main([str(tmp_path / "bad.json"), "--toml", str(tmp_path / "c.toml")]) == 2
    no_output = {**load("sd15_standard"), "output_dir": ""}
    (tmp_path / "no_output.json").write_text(json.dumps(no_output))
    assert main([str(tmp_path / "no_output.json"), "--toml", str(tmp_path / "d.toml")]) == 1
    assert '"output_dir" is required' in capsys.readouterr().err
    assert not (tmp_path / "a.toml").exists()


def test_importing_imports_no_heavy_library(tmp_path: Path) -> None:
    code = (
        "import json, sys; from gui.kohya_import.importer import convert_kohya_config, write_run_files; "
        f"r = convert_kohya_config(json.load(open({str(CONFIGS / 'sd15_standard.json')!r}))); "
        f"write_run_files(r, {str(tmp_path / 'run.toml')!r}); "
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
