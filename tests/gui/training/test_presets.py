"""Presets: save/load round trip, unknown keys reported, shipped presets clean (no paths, no secrets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.options.schema import all_options
from gui.training import presets
from gui.training.presets import (
    SHIPPED_DIR,
    list_presets,
    load_preset,
    parse_preset,
    save_preset,
    user_preset_path,
)
from gui.training.training_kinds import FINETUNE

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
    loaded = parse_preset({"learning_rat": 0.1, "t5xxl": "t5.safetensors", "model_type": "sdxl", "seed": "x",
                           "accelerate": {"gpus": 1}, "network_type": "Nope"})  # fmt: skip
    assert any('"learning_rat"' in message and "learning_rate" in message for message in loaded.unknown)
    assert any('"t5xxl"' in message for message in loaded.unknown)  # a FLUX.1/SD 3.5 option, not SDXL
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


# --- Loading gives a defined form; broken files change nothing; Save never overwrites silently (item 18)

from gui.i18n import Translator  # noqa: E402
from gui.training.lora_actions import TabValues  # noqa: E402
from gui.training.preset_load import kept_options, name_for_chosen, preset_outcome, save_target  # noqa: E402
from gui.training.training_kinds import LORA  # noqa: E402

T = Translator("en")


def outcome(path: Path, current: TabValues, kind=LORA, t: Translator = T):  # noqa: ANN001, ANN201
    return preset_outcome(load_preset(path, kind), path, path.stem, current, kind, t)


def test_a_shipped_preset_loads_over_the_defaults_not_over_the_last_one() -> None:
    """Prodigy's optimizer_args, U-Net only and the LoKr network do not survive loading another preset."""
    mine = TabValues(options={"pretrained_model_name_or_path": "/m.safetensors", "output_dir": "/out",
                              "output_name": "mine", "learning_rate": 0.5})  # fmt: skip
    first = outcome(SHIPPED_DIR / "sdxl_lokr_prodigy.json", mine)
    assert first.tab is not None and first.tab.options["optimizer_args"]
    second = outcome(SHIPPED_DIR / "sdxl_low_vram.json", first.tab)
    alone = outcome(SHIPPED_DIR / "sdxl_low_vram.json", mine)
    assert second.tab is not None and alone.tab is not None
    assert second.tab.form_data() == alone.tab.form_data()
    assert "Prodigy" not in str(second.tab.form_data())
    # The defaults apply to everything the preset does not hold; the user's paths and name stay.
    assert "learning_rate" in second.tab.options and second.tab.options["learning_rate"] == 0.0001
    assert {second.tab.options[name] for name in ("pretrained_model_name_or_path", "output_dir", "output_name")} \
        == {"/m.safetensors", "/out", "mine"}
    assert set(second.kept) == {"pretrained_model_name_or_path", "output_dir", "output_name"}
    assert "output_dir" in second.message and "back to its default" in second.message


def test_a_user_preset_is_the_whole_form(tmp_path: Path) -> None:
    path = save_preset(tmp_path / "mine.json", {"learning_rate": 0.001, "output_dir": "/a"}, {"model_type": "sdxl"})
    loaded = outcome(path, TabValues(options={"output_dir": "/current", "train_data_dir": "/data", "seed": 3}))
    assert loaded.tab is not None and loaded.kept == []
    assert loaded.tab.options == {"learning_rate": 0.001, "output_dir": "/a"}
    assert (loaded.tab.model_type, loaded.tab.network_type, loaded.tab.accelerate) == ("sdxl", "Standard", {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2]", "holds a list, not a JSON object"),
        ('{\n  "learning_rate": 0.1,,\n}', "line 2, column"),
        ('{\n  "model_type": "sd1",\n  "learning_rate": "fast"\n}', 'line 3: "learning_rate" expects a number'),
        ('{"accelerate": [1]}', '"accelerate" must be an object'),
        ('{"save_model_as": "diffusers"}', '"save_model_as" must be one of safetensors, ckpt, pt'),
        ("", "not valid JSON"),
    ],
)  # fmt: skip
def test_a_broken_preset_changes_nothing_and_says_what_and_where(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text, encoding="utf-8")
    result = outcome(path, TabValues(options={"learning_rate": 0.123}))
    assert result.tab is None  # the form keeps what it has
    assert "not loaded" in result.message and str(path) in result.message and expected in result.message


def test_a_broken_preset_is_explained_in_the_ui_language(tmp_path: Path) -> None:
    from backend import messages

    messages.set_language("ja")  # as building the Japanese GUI does (gui/app.py)
    path = tmp_path / "broken.json"
    path.write_text('{\n  "model_type": "sdxl2",\n  "accelerate": {"gpus": 1}\n}', encoding="utf-8")
    loaded = load_preset(path)
    assert loaded.problems == ['2 行目: "model_type" は sd1, sd2, sdxl, flux_dev, flux_schnell, chroma, sd3_medium, sd3_large のいずれかにしてください（指定値: \'sdxl2\'）']
    assert loaded.unknown == ['不明な accelerate の設定 "gpus"']
    path.write_text("[1, 2]", encoding="utf-8")
    assert "リストが書かれています" in load_preset(path).problems[0]
    result = outcome(path, TabValues(options={}), t=Translator("ja"))
    assert result.tab is None and Translator("ja").t("ui.preset_refused", name="broken", path=path) in result.message


def test_broken_accelerate_values_are_named_in_the_ui_language(tmp_path: Path) -> None:
    from gui.training.accelerate_form import accelerate_problems

    ja = Translator("ja")
    problems = accelerate_problems({"num_processes": 0, "main_process_port": "99999", "mixed_precision": "fp8",
                                    "gpu_ids": "first"}, ja)  # fmt: skip
    assert len(problems) == 4
    assert any("プロセス数 (num_processes)" in p and "1 以上" in p for p in problems)
    assert any("main_process_port" in p and "65535" in p for p in problems)
    assert accelerate_problems({"num_processes": "2", "gpu_ids": "0,1", "mixed_precision": "bf16"}, ja) == []


def test_save_goes_to_the_typed_name_and_asks_before_replacing(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "mine.json").write_text("{}", encoding="utf-8")
    found = list_presets(SHIPPED_DIR, user)
    # A typed name wins over the selected preset: no silent overwrite of "mine".
    assert save_target("new one", "mine", found, user) == save_target("new one", None, found, user)
    assert save_target("new one", "mine", found, user).path == user / "new_one.json"
    assert not save_target("new one", "mine", found, user).exists
    # Nothing typed: the selected user preset, flagged as existing (the tab then asks for Overwrite).
    assert save_target("", "mine", found, user).path == user / "mine.json"
    assert save_target("", "mine", found, user).exists
    assert save_target("mine", None, found, user).exists
    # A shipped preset is never the target; nothing typed and nothing chosen: no target.
    assert save_target("", "[sdxl_locon]", found, user).path is None
    assert save_target("  ", None, found, user).path is None
    assert name_for_chosen("mine", found, user) == "mine" and name_for_chosen("[sdxl_locon]", found, user) == ""


def test_kept_options_are_paths_and_the_output_name() -> None:
    kept = kept_options(LORA)
    assert {"pretrained_model_name_or_path", "train_data_dir", "output_dir", "output_name"} <= set(kept)
    assert "learning_rate" not in kept and "resolution" not in kept
