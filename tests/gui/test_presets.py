"""Presets: save/load round trip, unknown keys reported, shipped presets clean (no paths, no secrets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.options.schema import all_options
from gui import presets
from gui.presets import SHIPPED_DIR, list_presets, load_preset, parse_preset, save_preset, user_preset_path
from gui.training_kinds import FINETUNE

SHIPPED = sorted(SHIPPED_DIR.glob("*.json"))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    values = {"learning_rate": 0.0002, "network_args": ["conv_dim=4"], "output_dir": "/out/ファイル",
              "text_encoder_lr": [1e-5, 2e-5], "shuffle_caption": True, "max_token_length": 225}  # fmt: skip
    gui = {"model_type": "sdxl", "network_type": "LoCon", "accelerate": {"num_processes": 2}}
    path = save_preset(tmp_path / "p.json", values, gui)
    loaded = load_preset(path)
    assert (loaded.values, loaded.gui, loaded.unknown, loaded.problems) == (values, gui, [], [])


def test_secrets_and_cli_only_options_are_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = next((o for o in all_options().values() if o.secret), None)
    values = {"learning_rate": 0.1, "config_file": "/x.toml"}
    if secret is not None:
        values[secret.name] = "hunter2"
    data = json.loads(save_preset(tmp_path / "p.json", values, {}).read_text(encoding="utf-8"))
    assert data == {"learning_rate": 0.1}


def test_unknown_keys_and_bad_values_are_reported() -> None:
    loaded = parse_preset({"learning_rat": 0.1, "clip_skip": 2, "model_type": "sdxl", "seed": "x",
                           "accelerate": {"gpus": 1}, "network_type": "Nope"})  # fmt: skip
    assert any('"learning_rat"' in message and "learning_rate" in message for message in loaded.unknown)
    assert any('"clip_skip"' in message for message in loaded.unknown)  # an SD 1.x/2.x option, not SDXL
    assert any("gpus" in message for message in loaded.unknown)
    assert any('"seed"' in problem for problem in loaded.problems)
    assert any('"network_type"' in problem for problem in loaded.problems)
    assert loaded.values == {}


def test_run_snapshot_loads_as_preset() -> None:
    loaded = parse_preset({"command": "train_network", "v2": True, "learning_rate": 0.1})
    assert loaded.gui == {"model_type": "sd2"} and loaded.values == {"learning_rate": 0.1}


def test_user_preset_names_are_safe(tmp_path: Path) -> None:
    assert user_preset_path("my/preset: 1", tmp_path) == tmp_path / "my_preset_1.json"
    assert user_preset_path("キャラ", tmp_path).name == "キャラ.json"


def test_list_presets_marks_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "mine.json").write_text("{}", encoding="utf-8")
    found = list_presets(user=tmp_path)
    assert found["mine"] == tmp_path / "mine.json"
    assert all(found[f"[{path.stem}]"] == path for path in SHIPPED)


def test_there_are_shipped_presets() -> None:
    assert {path.stem for path in SHIPPED} >= {"sd15_character_lora", "sdxl_locon", "sdxl_lokr_prodigy", "sdxl_low_vram"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_preset_loads_cleanly_without_paths_or_secrets(path: Path) -> None:
    loaded = load_preset(path)
    assert loaded.unknown == [] and loaded.problems == []
    assert {"model_type", "network_type"} <= loaded.gui.keys()
    options = all_options()
    assert [name for name in loaded.values if options[name].kind == "path" or options[name].secret] == []
    # A preset that picks a network type also names its module, so the overlay is consistent.
    assert loaded.values["network_module"] == presets.NETWORK_TYPES[loaded.gui["network_type"]].module


FINETUNE_SHIPPED = sorted(FINETUNE.shipped_presets.glob("*.json"))


def test_there_are_shipped_fine_tune_presets() -> None:
    assert {path.stem for path in FINETUNE_SHIPPED} >= {"sd15_finetune", "sdxl_finetune_24gb", "sdxl_finetune_ema"}


@pytest.mark.parametrize("path", FINETUNE_SHIPPED, ids=lambda p: p.stem)
def test_shipped_fine_tune_preset_loads_cleanly_for_its_command(path: Path) -> None:
    loaded = load_preset(path, FINETUNE)
    assert loaded.unknown == [] and loaded.problems == []
    assert "network_type" not in loaded.gui and "model_type" in loaded.gui
    options = all_options()
    assert [name for name in loaded.values if options[name].kind == "path" or options[name].secret] == []


def test_a_fine_tune_snapshot_loads_in_its_tab_only() -> None:
    snapshot = {"command": "sdxl_train", "learning_rate": 1e-6, "ema": True}
    loaded = parse_preset(snapshot, FINETUNE)
    assert (loaded.gui, loaded.values, loaded.problems) == ({"model_type": "sdxl"}, {"learning_rate": 1e-6, "ema": True}, [])
    assert parse_preset(snapshot).problems  # not a LoRA run
    assert any('"ema"' in message for message in parse_preset({"ema": True}).unknown)  # no EMA for LoRAs
