"""`python -m backend.options`, the sd-scripts flag list, and the package staying light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from backend import families
from backend.options.__main__ import main
from backend.options.dataset_keys import DATASET_KEYS
from backend.options.schema import KNOWN_COMMANDS, all_options, options_for
from backend.options.sd_scripts_flags import sd_scripts_commands_for, sd_scripts_flags
from backend.options.toml_lines import key_lines

REPO = Path(__file__).resolve().parents[2]


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.options", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_dump_is_json_with_every_option():
    result = run_module("--dump")
    assert result.returncode == 0, result.stderr
    dumped = json.loads(result.stdout)
    assert dumped["schema_version"] == 1
    assert dumped["commands"] == list(KNOWN_COMMANDS)  # the image commands, then train_video
    assert "model" in dumped["groups"]
    assert [option["name"] for option in dumped["options"]] == list(all_options())
    assert {key["name"] for key in dumped["dataset_keys"]} == set(DATASET_KEYS)
    assert dumped["model_types"] == families.model_types()  # what the GUI offers (gui/training/model_types.py)
    assert [model_type["name"] for model_type in dumped["model_types"]] == list(families.names())
    assert {name: len(flags) for name, flags in dumped["sd_scripts_flags"].items()} == {
        "train_network": 193, "sdxl_train_network": 196, "fine_tune": 167, "sdxl_train": 176,
        "flux_train_network": 215, "flux_train": 194, "sd3_train_network": 218, "sd3_train": 201, "train_db": 169,
        "train_textual_inversion": 169, "sdxl_train_textual_inversion": 170,
    }  # fmt: skip


def test_dump_for_one_command(capsys):
    assert main(["--dump", "--command", "sdxl_train_network"]) == 0
    dumped = json.loads(capsys.readouterr().out)
    assert dumped["commands"] == ["sdxl_train_network"]
    assert [option["name"] for option in dumped["options"]] == list(options_for("sdxl_train_network"))
    assert "v2" not in {option["name"] for option in dumped["options"]}
    assert list(dumped["sd_scripts_flags"]) == ["sdxl_train_network"]


def test_check_config_and_dataset(tmp_path, capsys):
    good = tmp_path / "run.toml"
    good.write_text("[model]\npretrained_model_name_or_path = '/m.safetensors'\n[saving]\noutput_dir = '/out'\n")
    assert main(["--check", str(good), "--command", "train_network"]) == 0
    assert capsys.readouterr().out == f"OK: {good}\n"

    bad = tmp_path / "bad.toml"
    bad.write_text("pretrained_model_name_or_path = '/m'\nv_parameterisation = true\n")
    assert main(["--check", str(bad), "--command", "train_network"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: 1 problem found:",
        f'  {bad}:2: unknown option "v_parameterisation" (did you mean "v_parameterization"?)',
    ]

    dataset = tmp_path / "data.toml"
    dataset.write_text("[[datasets]]\n[[datasets.subsets]]\nmetadata_file = '/m.json'\n")
    assert main(["--check_dataset", str(dataset), "--command", "fine_tune"]) == 0
    assert main(["--check_dataset", str(dataset), "--command", "train_network"]) == 0
    dataset.write_text("[[datasets]]\n[[datasets.subsets]]\nimage_dir = '/img'\n")
    assert main(["--check_dataset", str(dataset), "--command", "fine_tune"]) == 2


def test_sd_scripts_flags_by_script():
    sdxl_only = sd_scripts_flags("sdxl_train") - sd_scripts_flags("train_network")
    assert {"block_lr", "learning_rate_te1", "learning_rate_te2", "fused_optimizer_groups"} <= sdxl_only
    assert sd_scripts_flags("sdxl_train_network") - sd_scripts_flags("train_network") == {
        "cache_text_encoder_outputs", "cache_text_encoder_outputs_to_disk", "disable_mmap_load_safetensors",
    }  # fmt: skip
    assert sd_scripts_commands_for("network_dim") == (
        "train_network", "sdxl_train_network", "train_leco", "sdxl_train_leco", "flux_train_network",
        "sd3_train_network",
    )  # fmt: skip
    assert sd_scripts_commands_for("learning_rat") == ()


def test_key_lines_follow_tables_and_arrays_of_tables():
    text = (
        "a = 1\n[general]\nb = 2\n[[datasets]]\nc = 3\n  [[datasets.subsets]]\n  d = 4\n"
        "  [[datasets.subsets]]\n  'd' = 5\n  x = [\n    \"e = 1\",\n  ]\n[[datasets]]\nc = 6\n"
    )
    lines = key_lines(text)
    assert lines[((), "a")] == 1 and lines[(("general",), "b")] == 3 and lines[((), "general")] == 2
    assert lines[(("datasets", 0), "c")] == 5 and lines[(("datasets", 1), "c")] == 14
    assert lines[(("datasets", 0, "subsets", 0), "d")] == 7
    assert lines[(("datasets", 0, "subsets", 1), "d")] == 9
    assert lines[(("datasets", 0, "subsets", 1), "")] == 8
    assert (("datasets", 0, "subsets", 1), "e") not in lines


def test_importing_options_does_not_import_heavy_packages():
    code = (
        "import sys, backend.options, backend.options.__main__\n"
        "backend.options.all_options()\n"
        "heavy = {'torch', 'numpy', 'diffusers', 'transformers', 'PIL', 'safetensors'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
