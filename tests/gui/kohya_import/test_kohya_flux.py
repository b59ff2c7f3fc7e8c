"""Importing kohya_ss GUI FLUX.1 LoRA configs (v25 and v26 saves): FLUX.1 dev or schnell as the model file
(or its name) says, the FLUX.1 section as our options, the Flux1 network fields as the network_args our
networks.lora reads on FLUX.1, and every key this trainer does not implement in the report with its reason.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from backend.networks.args import parse_network_args
from backend.options import parse_args
from backend.options.schema import options_for
from gui.i18n import Translator
from gui.kohya_import.importer import (
    KohyaImportError,
    convert_kohya_config,
    format_report,
    main,
    write_run_files,
)
from gui.training import lora_actions
from tests.end_to_end.helpers import make_images

CONFIGS = Path(__file__).parents[1] / "data" / "kohya_configs"
V25 = "flux1_v25_lora_ranks"  # kohya_ss v25.2 save: ranks per layer, split_qkv, a block selection
V26 = "flux1_lora"  # kohya_ss v26 save (287 keys): defaults, noise settings FLUX.1 ignores
T = Translator("en")


def load(name: str, **changes: Any) -> dict[str, Any]:
    return {**json.loads((CONFIGS / f"{name}.json").read_text(encoding="utf-8")), **changes}


def unmapped(result) -> dict[str, tuple[Any, str]]:
    return {entry.key: (entry.value, entry.reason) for entry in result.unmapped}


def details(result) -> dict[str, str]:
    return {entry.key: entry.detail for entry in result.unmapped}


def test_a_v25_flux_lora_config_imports_as_flux_dev(tmp_path: Path) -> None:
    result = convert_kohya_config(load(V25))
    assert (result.command, result.model_type, result.network_type) == ("flux_train_network", "flux_dev", "Standard")
    options = result.options
    assert "network_module" not in options  # networks.lora (sd-scripts' networks.lora_flux) is the default
    assert options["network_args"] == [
        "img_attn_dim=8", "single_dim=8", "txt_attn_dim=4", "in_dims=[4,0,0,0,4]", "train_single_block_indices=0,1",
        "split_qkv=True",
    ]  # fmt: skip
    assert options["ae"] == "/home/me/models/ae.safetensors" and options["clip_l"].endswith("clip_l.safetensors")
    assert options["t5xxl"].endswith("t5xxl_fp16.safetensors")
    assert (options["timestep_sampling"], options["discrete_flow_shift"], options["model_prediction_type"]) == (
        "shift", 3.1582, "raw"
    )
    assert options["guidance_scale"] == 1.0 and options["apply_t5_attn_mask"] is True
    assert options["t5xxl_max_token_length"] == 512  # kohya_ss always passes it (sd-scripts' schnell default is 256)
    assert options["fp8_base"] is True and "fp8_base_unet" not in options
    assert options["cache_text_encoder_outputs"] is True and options["cache_text_encoder_outputs_to_disk"] is True
    assert options["network_train_unet_only"] is True  # text_encoder_lr 0
    report = unmapped(result)
    assert report["mem_eff_save"] == (True, "not_used") and "flux_train" in details(result)["mem_eff_save"]
    assert options["highvram"] is True and "highvram" not in report
    first = result.warnings[0]
    assert first.startswith("flux1_checkbox -> model type FLUX.1 [dev]") and "not on this machine" in first
    assert f"\n  {first}" in format_report(result)
    written = write_run_files(result, tmp_path / "run.toml")
    args = parse_args(result.command, ["--config_file", str(written[-1])])
    assert args.network_args == options["network_args"] and args.guidance_scale == 1.0


def test_a_v26_flux_config_reports_what_flux_ignores() -> None:
    result = convert_kohya_config(load(V26))
    assert result.model_type == "flux_dev" and "network_args" not in result.options  # every field at its default
    report = unmapped(result)
    # kohya_ss passes DDPM noise settings to flux_train_network, which ignores them: said, not carried.
    assert report["noise_offset"] == (0.05, "not_used") and report["min_snr_gamma"] == (7, "not_used")
    assert "flux_train_network ignores it" in details(result)["noise_offset"]
    assert report["sdxl_no_half_vae"] == (True, "not_used")
    assert report["huggingface_token"] == ("<hidden>", "secret")
    assert not [key for key, (_, reason) in report.items() if reason in ("unknown", "other_command")]


def test_the_network_args_are_what_networks_lora_reads_on_flux() -> None:
    from backend.families.flux.network import FLUX_NETWORK, parse_in_dims
    from backend.networks.args import ArgReader
    from backend.networks.layout import check_layout_keys

    config = load(V25, split_mode=True, train_t5xxl=True, rank_dropout=0.1, loraplus_unet_lr_ratio=4,
                  train_double_block_indices="0", img_mlp_dim="0")  # fmt: skip
    args = convert_kohya_config(config).options["network_args"]
    kwargs = parse_network_args(args)
    check_layout_keys(FLUX_NETWORK, kwargs, "networks.lora")  # raises on a key FLUX.1's layout refuses or lacks
    assert kwargs["train_blocks"] == "single"  # kohya_ss: split_mode forces single blocks
    assert kwargs["img_mlp_dim"] == "0"  # a typed 0 is passed: no LoRA on those layers
    assert parse_in_dims(ArgReader(kwargs)) == [4, 0, 0, 0, 4]
    assert {"train_t5xxl=True", "rank_dropout=0.1", "loraplus_unet_lr_ratio=4", "train_double_block_indices=0"} <= set(args)


def test_keys_this_trainer_lacks_are_reported_with_the_reason() -> None:
    config = load(V25, split_mode=True, single_blocks_to_swap=4, train_lora_ggpo=True, enable_all_linear=True,
                  blocks_to_swap=8, cpu_offload_checkpointing=True, text_encoder_lr=5e-5, t5xxl_lr=1e-5,
                  show_timesteps="image")  # fmt: skip
    result = convert_kohya_config(config)
    report, why = unmapped(result), details(result)
    assert report["split_mode"] == (True, "not_implemented") and "blocks_to_swap" in why["split_mode"]
    assert report["single_blocks_to_swap"] == (4, "not_used") and "deprecated" in why["single_blocks_to_swap"]
    assert report["train_lora_ggpo"] == (True, "not_implemented") and "ggpo_sigma=0.03" in why["train_lora_ggpo"]
    assert report["enable_all_linear"] == (True, "not_used") and "Flux1 OFT" in why["enable_all_linear"]
    assert report["show_timesteps"][1] == report["show_timesteps_resolution"][1] == "not_implemented"
    # Options another part of this trainer may implement: taken when the schema has them, reported otherwise.
    schema = options_for("flux_train_network")
    for key, value in (("blocks_to_swap", 8), ("cpu_offload_checkpointing", True)):
        if key in schema:
            assert result.options[key] == value
        else:
            assert report[key] == (value, "not_implemented")
    # kohya_ss: text_encoder_lr [CLIP-L, T5-XXL]
    assert result.options["text_encoder_lr"] == [5e-05, 1e-05] and "network_train_unet_only" not in result.options
    alone = unmapped(convert_kohya_config(load(V25, t5xxl_lr=1e-5)))
    assert alone["t5xxl_lr"] == (1e-05, "invalid")
    # kohya_ss passes train_blocks only with split_mode: another value is said to be unused.
    double = convert_kohya_config(load(V25, train_blocks="double"))
    assert unmapped(double)["train_blocks"] == ("double", "not_used")
    assert not any(arg.startswith("train_blocks") for arg in double.options["network_args"])


def test_schnell_by_the_model_name_when_the_file_is_not_here() -> None:
    result = convert_kohya_config(load(V26, pretrained_model_name_or_path="/models/FLUX1-Schnell-fp8.safetensors"))
    assert result.model_type == "flux_schnell" and result.command == "flux_train_network"
    assert '"schnell" -> FLUX.1 [schnell]' in result.warnings[0]


def test_the_model_file_decides_over_its_name(tiny, tmp_path: Path) -> None:
    schnell = tiny.get("flux-schnell", single_file=True)
    misnamed = tmp_path / "flux1-dev-final.safetensors"  # a schnell transformer whatever its name says
    shutil.copy(schnell.path, misnamed)
    result = convert_kohya_config(load(V26, pretrained_model_name_or_path=str(misnamed)))
    assert result.model_type == "flux_schnell"
    assert "without a guidance embedding" in result.warnings[0]
    folder = convert_kohya_config(load(V26, pretrained_model_name_or_path=str(tiny.get("flux-dev").path)))
    assert folder.model_type == "flux_dev" and "transformer/config.json" in folder.warnings[0]


def test_flux1_checkbox_with_an_sdxl_model_is_refused_naming_the_file(tiny) -> None:
    sdxl = tiny.get("sdxl", single_file=True).path
    with pytest.raises(KohyaImportError) as error:
        convert_kohya_config(load(V26, pretrained_model_name_or_path=str(sdxl)))
    text = str(error.value)
    assert "flux1_checkbox is on" in text and str(sdxl) in text and "SDXL model" in text
    assert "FLUX.1 [dev]/FLUX.1 [schnell]/Chroma" in text


def test_a_flux_part_given_as_the_model_is_refused(tiny) -> None:
    ae = tiny.get("flux-dev", single_file=True).part_files["ae"]
    with pytest.raises(KohyaImportError, match=r"FLUX\.1 autoencoder .*--ae"):
        convert_kohya_config(load(V26, pretrained_model_name_or_path=str(ae)))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"LoRA_type": "Flux1 OFT"}, "networks.oft_flux"),
        ({"LoRA_type": "LyCORIS/LoCon"}, 'flux1_checkbox is on with LoRA type "LyCORIS/LoCon"'),
        ({"sdxl": True}, 'LoRA type "Flux1" needs flux1_checkbox on, but sdxl is on'),
    ],
)
def test_flux_configs_this_trainer_cannot_train_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(KohyaImportError, match=message):
        convert_kohya_config(load(V26, **changes))


def test_a_chroma_config_imports_as_chroma(tiny) -> None:
    """kohya_ss's model_type chroma (sd-scripts' --model_type) picks Chroma when the file is not here; a Chroma
    file picks it by its keys; either contradicting the other is refused with what to set."""
    result = convert_kohya_config(load(V26, model_type="chroma", pretrained_model_name_or_path="/x/model.safetensors"))
    assert (result.command, result.model_type) == ("flux_train_network", "chroma")
    chroma = str(tiny.get("chroma", single_file=True).path)
    assert convert_kohya_config(load(V26, model_type="chroma", pretrained_model_name_or_path=chroma)).model_type == (
        "chroma")
    with pytest.raises(KohyaImportError, match=r'model_type "flux", but the base model is Chroma .*set model_type to '
                                               r'"chroma"'):
        convert_kohya_config(load(V26, model_type="flux", pretrained_model_name_or_path=chroma))


def test_the_flux1_type_without_the_checkbox_is_imported_as_flux() -> None:
    result = convert_kohya_config(load(V25, flux1_checkbox=False))
    assert result.command == "flux_train_network" and result.model_type == "flux_dev"
    assert any("kohya_ss started train_network.py" in w for w in result.warnings)


def test_flux_settings_in_an_sd_config_are_flux_only() -> None:
    sd15 = load("sd15_standard", guidance_scale=2.0, img_attn_dim="8", flux1_cache_text_encoder_outputs=True)
    result = convert_kohya_config(sd15)
    report = unmapped(result)
    assert report["guidance_scale"] == (2.0, "not_used") and report["img_attn_dim"] == (8, "not_used")
    assert report["flux1_cache_text_encoder_outputs"] == (True, "not_used")
    assert "FLUX.1 only" in details(result)["guidance_scale"] and result.model_type is None


def test_the_cli_imports_a_flux_config(tmp_path: Path, capsys) -> None:
    assert main([str(CONFIGS / f"{V25}.json"), "--toml", str(tmp_path / "run.toml")]) == 0
    printed = capsys.readouterr().out
    assert "flux_train_network, network type Standard" in printed and "model type FLUX.1 [dev]" in printed
    assert "-m backend.flux_train_network --config_file" in printed


@pytest.mark.parametrize("name", [V26, V25])
def test_an_imported_flux_config_passes_preflight_from_the_tab(name: str, tiny, tmp_path: Path) -> None:
    """The GUI's import button, then preflight with this machine's tiny FLUX.1 files and images."""
    imported = lora_actions.import_kohya(str(CONFIGS / f"{name}.json"), T, prompts_dir=tmp_path)
    assert imported.tab is not None, imported.message
    tab = imported.tab
    assert (tab.model_type, tab.command) == ("flux_dev", "flux_train_network")
    assert "FLUX.1 [dev]" in imported.message
    model = tiny.get("flux-dev", single_file=True)
    make_images(tmp_path / "img" / "1_style", 2)
    tab.options.update(
        pretrained_model_name_or_path=str(model.path), train_data_dir=str(tmp_path / "img"),
        output_dir=str(tmp_path / "out"), logging_dir=str(tmp_path / "log"), resolution="64,64",
        tokenizer_cache_dir=str(model.tokenizer_cache_dir), t5xxl_max_token_length=16,
        **{flag: str(path) for flag, path in model.part_files.items()},
    )  # fmt: skip
    report = lora_actions.preflight(tab, T)
    assert report.startswith(f"### {T.t('ui.preflight_ok')}"), report


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("flux1-schnell.ckpt", b"PK\x03\x04 not read here", "is not a .safetensors file"),  # a pickle needs torch
        ("flux1-schnell.safetensors", b"\x00" * 3, "could not be read"),  # damaged: preflight says more
    ],
)
def test_a_model_file_the_import_cannot_read_leaves_it_to_the_name(
    name: str, content: bytes, said: str, tmp_path: Path
) -> None:
    model = tmp_path / name
    model.write_bytes(content)
    result = convert_kohya_config(load(V26, pretrained_model_name_or_path=str(model), sigmoid_scale=2.0))
    assert result.model_type == "flux_schnell" and said in result.warnings[0]
    assert result.options["sigmoid_scale"] == 2.0  # not in kohya_ss's form, but sd-scripts' name: kept
