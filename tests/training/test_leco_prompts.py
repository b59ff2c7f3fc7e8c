"""LECO prompt files (backend/training/leco_prompts.py): sd-scripts' two formats, their defaults, and every problem
named with the file, the entry and the key, before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.training.leco_prompts import PromptFileError, load_prompt_settings, settings_preview


def write(tmp_path: Path, text: str, name: str = "prompts.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(PromptFileError) as caught:
        load_prompt_settings(path)
    return caught.value.problems


def test_prompts_format_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, 'guidance_scale = 2.0\n[[prompts]]\ntarget = "van gogh"\n'
                           '[[prompts]]\ntarget = "cat"\nunconditional = "blurry"\naction = "enhance"\n'
                           'resolution = [512, 768]\nbatch_size = 2\n')
    first, second = load_prompt_settings(path)
    assert first.prompts == ("van gogh", "van gogh", "", "")
    assert (first.action, first.guidance_scale, first.resolution, first.multiplier) == ("erase", 2.0, (512, 512), 1.0)
    assert second.prompts == ("cat", "cat", "blurry", "blurry")  # neutral defaults to the unconditional prompt
    assert (second.action, second.resolution, second.batch_size) == ("enhance", (512, 768), 2)
    assert '"van gogh"' in settings_preview([first, second])


def test_slider_targets_expand_both_ways_per_neutral(tmp_path: Path) -> None:
    (tmp_path / "neutrals.txt").write_text("a photo\n\ncinematic\n", encoding="utf-8")
    path = write(tmp_path, 'resolution = 1024\nneutral_prompt_file = "neutrals.txt"\nneutrals = [""]\n'
                           '[[targets]]\ntarget_class = "person"\npositive = "smiling"\nnegative = "sad"\n'
                           'multiplier = 2.0\n[[targets]]\ntarget_class = ""\nnegative = "low detail"\n')
    settings = load_prompt_settings(path)
    both, one = settings[:12], settings[12:]
    assert len(both) == 12 and len(one) == 6  # 4 and 2 settings per neutral ("", "a photo", "cinematic")
    assert [(s.positive, s.unconditional, s.action, s.multiplier) for s in both[:4]] == [
        ("sad", "smiling", "erase", 2.0), ("smiling", "sad", "enhance", 2.0),
        ("smiling", "sad", "erase", -2.0), ("sad", "smiling", "enhance", -2.0)]
    assert {s.neutral for s in both} == {"", "a photo", "cinematic"}
    assert [(s.positive, s.action, s.multiplier) for s in one[:2]] == [("low detail", "erase", 1.0),
                                                                       ("low detail", "enhance", -1.0)]
    assert all(s.resolution == (1024, 1024) and s.target == "person" for s in both)


def test_missing_file_and_syntax_error(tmp_path: Path) -> None:
    [missing] = problems(tmp_path / "nope.toml")
    assert "nope.toml does not exist" in missing
    [syntax] = problems(write(tmp_path, "[[prompts]]\ntarget = \n"))
    assert "is not valid TOML" in syntax and "prompts.toml" in syntax


def test_every_problem_names_the_entry_and_the_key(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[[prompts]]\npositive = "x"\n[[prompts]]\ntarget = "a"\naction = "remove"\n'
                                     '[[prompts]]\ntarget = "b"\nresolution = 500\n[[prompts]]\ntarget = "c"\n'
                                     'mutliplier = 2.0\n'))
    assert len(found) == 4
    assert '[[prompts]] #1: no "target"' in found[0]
    assert '[[prompts]] #2: "action" "remove"' in found[1]
    assert '[[prompts]] #3: "resolution" 500' in found[2] and "multiple of 64" in found[2] and "512" in found[2]
    assert '[[prompts]] #4: unknown key "mutliplier" (did you mean "multiplier"?)' in found[3]
    assert all(str(tmp_path / "prompts.toml") in problem for problem in found)


def test_slider_target_without_direction_and_empty_file(tmp_path: Path) -> None:
    [found] = problems(write(tmp_path, '[[targets]]\ntarget_class = "person"\n'))
    assert '[[targets]] #1: neither "positive" nor "negative"' in found
    [empty] = problems(write(tmp_path, 'guidance_scale = 1.0\n'))
    assert "neither [[prompts]] nor [[targets]]" in empty
    [neutral_file] = problems(write(tmp_path, 'neutral_prompt_file = "gone.txt"\n[[targets]]\npositive = "x"\n'))
    assert "gone.txt" in neutral_file


def test_the_other_layouts_sd_scripts_reads(tmp_path: Path) -> None:
    # A slider target among [[prompts]], with its own neutral: its 2 settings after the prompt's.
    path = write(tmp_path, '[[prompts]]\ntarget = "dog"\n[[prompts]]\ntarget_class = "person"\n'
                           'positive = "smiling person"\nneutral = "photo"\n')
    prompt, *slider = load_prompt_settings(path)
    assert prompt.target == "dog" and [(s.target, s.neutral, s.multiplier) for s in slider] == [
        ("person", "photo", 1.0), ("person", "photo", -1.0)]
    # One slider target written at the top level (or under [slider]).
    for text in ('target_class = "person"\nnegative = "sad person"\nresolution = 64\n',
                 '[slider]\ntarget_class = "person"\nnegative = "sad person"\nresolution = 64\n'):
        settings = load_prompt_settings(write(tmp_path, text))
        assert [(s.positive, s.action, s.multiplier, s.resolution) for s in settings] == [
            ("sad person", "erase", 1.0, (64, 64)), ("sad person", "enhance", -1.0, (64, 64))]
    # [[targets]] holding original-format entries, top-level keys as their defaults.
    [setting] = load_prompt_settings(write(tmp_path, 'guidance_scale = 3.0\n[[targets]]\ntarget = "van gogh"\n'))
    assert setting.prompts == ("van gogh", "van gogh", "", "") and setting.guidance_scale == 3.0


def test_both_formats_in_one_file_is_refused_with_why(tmp_path: Path) -> None:
    [message] = problems(write(tmp_path, '[[prompts]]\ntarget = "dog"\n[[targets]]\ntarget_class = "a"\n'
                                         'positive = "b"\n'))
    assert "both [[prompts]] and [[targets]]" in message and "silently ignores the [[targets]]" in message


def test_a_missing_target_and_a_bad_action_are_both_named(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[[prompts]]\npositive = "x"\naction = "remove"\n'))
    assert len(found) == 2 and 'no "target"' in found[0] and '"action" "remove"' in found[1]
