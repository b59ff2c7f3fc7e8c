from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from backend.training.sample_prompts import (
    SAMPLER_NAMES,
    PromptFileError,
    check_sampler_available,
    get_sampler_scheduler,
    load_sample_prompts,
    parse_prompt_line,
    prompt_to_dict,
    sample_image_filename,
    should_sample,
)


def test_txt_prompts(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text(
        "\ufeff# comment\n"
        "a dog --n low quality, blurry --w 1024 --h 768 --d 42 --l 7 --s 28 --ss euler_a\n"
        "\n"
        "   # indented comment\n"
        "a cat --S 5000 --w 500\n",
        encoding="utf-8",
    )
    dog, cat = load_sample_prompts(path)
    assert dog.prompt == "a dog" and dog.negative_prompt == "low quality, blurry"
    assert (dog.width, dog.height, dog.seed, dog.scale, dog.sample_steps) == (1024, 768, 42, 7.0, 28)
    assert dog.sample_sampler == "euler_a" and dog.index == 0
    assert cat.index == 1 and cat.sample_steps == 1000  # clamped to 1..1000, keys case-insensitive
    assert cat.seed is None and cat.scale == 7.5 and cat.negative_prompt is None
    assert cat.size == (496, 512)  # rounded down to a multiple of 8


def test_prompt_line_keeps_option_like_words_in_the_prompt() -> None:
    prompt = parse_prompt_line("w 512 a house --n")
    assert prompt.prompt == "w 512 a house" and prompt.width == 512 and prompt.negative_prompt == ""
    flow = parse_prompt_line("x --g 3.5 --fs 3 --cn ctrl.png")
    assert (
        flow.guidance_scale == 3.5
        and flow.controlnet_image == "ctrl.png"
        and flow.extra == {"flow_shift": 3.0}
    )
    assert prompt_to_dict(flow) == {
        "prompt": "x", "width": 512, "height": 512, "sample_steps": 30, "scale": 7.5, "guidance_scale": 3.5,
        "controlnet_image": "ctrl.png", "flow_shift": 3.0, "enum": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a dog --w wide", "line 2: bad width 'wide'"),
        ("a dog --q 3", "line 2: unknown option --q"),
        ("a dog --ss eulr", "unknown sampler 'eulr'"),
        ("a dog --d", "option --d needs a value"),
        (" --w 512", "line 2: no prompt"),
    ],
)
def test_txt_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "p.txt"
    path.write_text(f"ok prompt\n{line}\n", encoding="utf-8")
    with pytest.raises(PromptFileError) as info:
        load_sample_prompts(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_toml_prompts(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        """
[prompt]
negative_prompt = "bad"
width = 768
sample_steps = 20

  [[prompt.subset]]
  prompt = "first"

  [[prompt.subset]]
  prompt = "second"
  width = 512
  seed = 7
  sample_sampler = "k_euler"
""",
        encoding="utf-8",
    )
    first, second = load_sample_prompts(path)
    assert (first.prompt, first.negative_prompt, first.width, first.sample_steps) == ("first", "bad", 768, 20)
    assert (second.width, second.seed, second.sample_sampler, second.index) == (512, 7, "k_euler", 1)


def test_toml_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[prompt]\nwidht = 5\n[[prompt.subset]]\nprompt = "x"\n', encoding="utf-8")
    with pytest.raises(PromptFileError, match=r"#1: unknown key 'widht' \(did you mean 'width'\?\)"):
        load_sample_prompts(path)
    path.write_text('prompt = "x"\n', encoding="utf-8")
    with pytest.raises(PromptFileError, match="prompt.subset"):
        load_sample_prompts(path)
    path.write_text("[prompt\n", encoding="utf-8")
    with pytest.raises(PromptFileError, match="not valid TOML"):
        load_sample_prompts(path)


def test_json_prompts_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps([{"prompt": "obj", "scale": 5, "height": 640}, "line style --d 3"]), encoding="utf-8"
    )
    obj, line = load_sample_prompts(path)
    assert (obj.prompt, obj.scale, obj.height) == ("obj", 5.0, 640)
    assert (line.prompt, line.seed, line.index) == ("line style", 3, 1)
    path.write_text(json.dumps([{"prompt": "x", "width": "big"}]), encoding="utf-8")
    with pytest.raises(PromptFileError, match="entry #1: bad width"):
        load_sample_prompts(path)
    path.write_text(json.dumps({"prompt": "x"}), encoding="utf-8")
    with pytest.raises(PromptFileError, match="expected a list"):
        load_sample_prompts(path)
    with pytest.raises(PromptFileError, match="must end in"):
        load_sample_prompts(tmp_path / "p.yaml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PromptFileError, match="cannot read"):
        load_sample_prompts(tmp_path / "none.txt")


# diffusers' KDPM2/DPM-solver set-up warns thousands of times about a numpy 2 array protocol change.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_sampler_builds() -> None:
    import diffusers

    has_scipy = importlib.util.find_spec("scipy") is not None
    # the k_ aliases build the same classes; skipping them keeps the slow KDPM2 set-up to two builds
    for name in [n for n in SAMPLER_NAMES if not n.startswith("k_")]:
        if name == "lms" and not has_scipy:
            assert "pip install scipy" in (check_sampler_available(name) or "")
            continue
        assert check_sampler_available(name) is None
        scheduler = get_sampler_scheduler(name)
        scheduler.set_timesteps(4)
        assert scheduler.config.num_train_timesteps == 1000
    assert isinstance(get_sampler_scheduler("k_euler_a"), diffusers.EulerAncestralDiscreteScheduler)
    ddim = get_sampler_scheduler("ddim", v_parameterization=True)
    assert ddim.config.clip_sample is True and ddim.config.prediction_type == "v_prediction"
    assert get_sampler_scheduler("dpmsolver++").config.algorithm_type == "dpmsolver++"
    custom = get_sampler_scheduler("euler", {"num_train_timesteps": 500, "beta_schedule": "linear"})
    assert custom.config.num_train_timesteps == 500
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler_scheduler("plms")


def test_sample_file_names() -> None:
    ts = 1700000000.0
    import time

    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(ts))
    assert sample_image_filename("lora", 3, step=500, timestamp=ts) == f"lora_000500_03_{stamp}.png"
    assert (
        sample_image_filename("lora", 0, epoch=2, step=500, seed=42, timestamp=ts)
        == f"lora_e000002_00_{stamp}_42.png"
    )
    assert sample_image_filename(None, 1, step=0, timestamp=ts) == f"000000_01_{stamp}.png"


def test_should_sample() -> None:
    kw = {"every_n_steps": None, "every_n_epochs": None, "at_first": False}
    assert not should_sample(step=0, epoch=None, **kw)
    assert should_sample(step=0, epoch=None, **{**kw, "at_first": True})
    steps = {**kw, "every_n_steps": 100}
    assert should_sample(step=200, epoch=None, **steps)
    assert not should_sample(step=250, epoch=None, **steps)
    assert not should_sample(step=200, epoch=2, **steps)  # epoch-end call
    epochs = {**kw, "every_n_steps": 100, "every_n_epochs": 2}
    assert should_sample(step=123, epoch=4, **epochs)
    assert not should_sample(step=200, epoch=None, **epochs)  # steps ignored when epochs are set
    assert not should_sample(step=123, epoch=3, **epochs)
    assert not should_sample(step=100, epoch=None, **{**kw, "every_n_steps": 0})
