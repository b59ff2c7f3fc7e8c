"""Quick LoRA's choices as pure functions: repeats for the dataset's size, the card's savers entry, the shipped quick
presets (each family x kind x card a form the LoRA page accepts), the captioner, the sample prompts, the memory fit."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from backend import families
from backend.memory.estimate import PlanError
from backend.options import OptionError
from gui.quick import choices as qc
from gui.quick.memory_fit import GIB, fit_to_card
from gui.training.command_builder import validate_values
from gui.training.lora_actions import TabValues
from gui.training.training_kinds import LORA


@pytest.mark.parametrize(("images", "target", "repeats"), [(3, 150, 50), (15, 150, 10), (40, 150, 4), (500, 150, 1),
                                                           (1, 150, qc.MAX_REPEATS), (0, 150, 1)])  # fmt: skip
def test_repeats_aim_at_the_same_images_per_epoch(images: int, target: int, repeats: int) -> None:
    assert qc.choose_repeats(images, target) == repeats


def test_steps_count_batches_per_epoch() -> None:
    assert qc.steps_of(15, 10, 10, 1) == 1500
    assert qc.steps_of(15, 10, 10, 4) == 380  # ceil(150 / 4) per epoch


def test_a_card_gets_the_entry_of_the_largest_size_it_holds() -> None:
    cards = {"cpu": {}, "8": {}, "12": {}, "24": {}}
    assert qc.card_key("cpu", cards) == "cpu"
    assert qc.card_key("16", cards) == "12"
    assert qc.card_key("48", cards) == "24"
    assert qc.card_key("8", cards) == "8"
    # nvidia-smi's MiB: an "8 GB" card reports a little less than 8192, a 24 GB one 24564.
    assert qc.card_of_memory(7982) == "8"
    assert qc.card_of_memory(24564) == "24"
    assert qc.card_of_memory(12288) == "12"
    assert qc.card_of_memory(81559) == "48"
    assert qc.card_of_memory(4096) == "8"


@pytest.mark.parametrize("model_type", qc.quick_model_types())
def test_every_quick_preset_gives_a_valid_lora_form_for_each_kind_and_card(model_type: str) -> None:
    preset = qc.load_quick_preset(model_type)
    assert preset is not None and preset.model_type == model_type
    assert model_type in LORA.model_type_names
    assert set(preset.kinds) == set(qc.KINDS)
    assert set(preset.cards) == set(qc.CARDS)
    command = LORA.command_for(model_type)
    for kind in qc.KINDS:
        for card in qc.CARDS:
            settings, images_per_epoch = qc.base_settings(preset, kind)
            fitted = fit_to_card(command, settings.options, card, preset.cards[card], plan=None)
            options = {**LORA.defaults, **fitted.options, "pretrained_model_name_or_path": "m.safetensors",
                       "train_data_dir": "img", "output_dir": "out", "sample_prompts": "p.txt"}  # fmt: skip
            tab = TabValues(options=options, model_type=model_type, kind=LORA)
            try:
                validate_values(command, tab.run_options())
            except OptionError as error:  # pragma: no cover - the message names the bad option
                pytest.fail(f"{model_type} {kind} {card}: {error.messages}")
            assert images_per_epoch > 0
            # Caching the text encoders' outputs cannot go with shuffled captions (sd-scripts refuses the pair).
            assert not (
                fitted.options.get("cache_text_encoder_outputs") and fitted.options.get("shuffle_caption")
            )
            assert fitted.options["save_every_n_epochs"] == 1 and fitted.options["sample_every_n_epochs"] == 1


def test_families_without_a_quick_preset_are_told_apart() -> None:
    assert qc.load_quick_preset("no_such_family") is None
    assert set(qc.quick_model_types()) <= set(families.names())


def test_the_users_adjustments_win() -> None:
    preset = qc.load_quick_preset(qc.quick_model_types()[0])
    assert preset is not None
    settings, _ = qc.base_settings(preset, "style", qc.Adjustments(resolution=64, epochs=2))
    assert settings.options["resolution"] == "64" and settings.options["max_train_epochs"] == 2
    sources = {choice.option: choice.source for choice in settings.choices}
    assert sources["resolution"] == sources["max_train_epochs"] == "you"
    assert sources["network_dim"] == "kind"  # a style gets a higher rank than the family's default
    assert sources["learning_rate"] == "family"


def _preset(anime_tags: bool) -> qc.QuickPreset:
    return qc.QuickPreset("x", 1024, anime_tags, {}, {}, {})


def test_wd14_tags_for_anime_models_of_a_tag_trained_family_blip_otherwise() -> None:
    assert qc.captioner_for(_preset(True), "anime", "model.safetensors") == ("wd14", "anime")
    assert qc.captioner_for(_preset(True), "photo", "animagine.safetensors") == ("blip", "photo")
    assert qc.captioner_for(_preset(True), "auto", "/m/Illustrious-XL-v1.safetensors") == ("wd14", "anime")
    assert qc.captioner_for(_preset(True), "auto", "/m/juggernaut.safetensors") == ("blip", "photo")
    assert qc.captioner_for(_preset(False), "anime", "anything.safetensors") == ("blip", "anime")


def test_sample_prompts_start_with_the_trigger_and_carry_the_size() -> None:
    text = qc.sample_prompts_text("character", "ohwx", "woman", 768, 512)
    lines = text.splitlines()
    assert len(lines) == 2 and all(line.startswith("ohwx, woman") for line in lines)
    assert all("--w 768 --h 512" in line for line in lines)
    assert qc.resolution_size("768,512") == (768, 512) and qc.resolution_size("1024") == (1024, 1024)


def test_the_planner_adjusts_the_savers_when_present() -> None:
    seen = {}

    def planner(command: str, options: dict, card_bytes: int) -> SimpleNamespace:
        seen.update(command=command, batch=options["train_batch_size"], card=card_bytes)
        return SimpleNamespace(fits=True, changes=[("train_batch_size", 1, "batch 2 needs 13.1 GB")])

    fitted = fit_to_card("train_network", {"network_dim": 16}, "12", {"train_batch_size": 2}, plan=planner)
    assert seen == {
        "command": "train_network",
        "batch": 2,
        "card": 12 * GIB,
    }  # the savers first, then the estimate
    assert fitted.options == {"network_dim": 16, "train_batch_size": 1}
    assert fitted.planned == [("train_batch_size", 1, "batch 2 needs 13.1 GB")] and fitted.fits is True
    cpu = fit_to_card("train_network", {}, "cpu", {"mixed_precision": "no"}, plan=planner)
    assert cpu.options == {"mixed_precision": "no"} and not cpu.planner  # no card to plan for


def test_a_planner_that_cannot_plan_leaves_the_savers() -> None:
    def planner(command: str, options: dict, card_bytes: int) -> SimpleNamespace:
        raise PlanError("the model's weights cannot be read")

    fitted = fit_to_card("train_network", {"network_dim": 16}, "8", {"train_batch_size": 1}, plan=planner)
    assert fitted.options == {"network_dim": 16, "train_batch_size": 1}
    assert fitted.error == "the model's weights cannot be read" and fitted.planned == []


def test_the_real_planner_fits_a_full_size_sd15_to_8_gb(tmp_path) -> None:
    from tests.memory.sparse_models import write_sparse_model

    model = write_sparse_model("sd15", tmp_path / "sd15-full.safetensors")  # the real shapes, no disk
    options = {"pretrained_model_name_or_path": str(model), "resolution": "512,512", "train_batch_size": 4,
               "mixed_precision": "no", "network_module": "networks.lora", "network_dim": 16}  # fmt: skip
    fitted = fit_to_card("train_network", options, "8", {})
    assert fitted.planner and fitted.fits and not fitted.error
    assert fitted.planned and all(fitted.options[option] == value for option, value, _ in fitted.planned)
    missing = {**options, "pretrained_model_name_or_path": str(tmp_path / "missing.safetensors")}
    refused = fit_to_card("train_network", missing, "8", {"train_batch_size": 1})
    assert refused.error and not refused.planner and refused.options["train_batch_size"] == 1


def test_the_cards_memory_comes_from_nvidia_smi(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gui.gpus import detected_gpus, largest_gpu_mib

    monkeypatch.setenv("PATH", str(tmp_path))
    detected_gpus.cache_clear()
    assert largest_gpu_mib() is None  # no nvidia-smi: the page says so and starts at "No GPU"
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho 'NVIDIA GeForce RTX 3070, 8188'\necho 'NVIDIA GeForce RTX 4090, 24564'\n",
        encoding="utf-8",
    )
    smi.chmod(0o755)
    detected_gpus.cache_clear()
    assert largest_gpu_mib() == 24564
    assert qc.card_of_memory(largest_gpu_mib() or 0) == "24"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed'\nexit 9\n", encoding="utf-8")
    detected_gpus.cache_clear()
    assert largest_gpu_mib() is None
    detected_gpus.cache_clear()
