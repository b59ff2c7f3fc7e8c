"""Broken TOML is reported at its real line and column, and a Windows path in double quotes gets its fix,
in every TOML this project reads: --config_file, --dataset_config, the GUI's config.toml, prompt files.
What the `toml` package (sd-scripts' reader) accepts stays accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

import kohya_gui
from backend.options.dataset_config import load_dataset_config
from backend.options.errors import OptionError
from backend.options.toml_lines import TomlSyntaxError, load_toml
from backend.training.sample_prompts import PromptFileError, load_sample_prompts
from gui.gui_config import GuiConfigError, load_gui_config

from .helpers import problems

FIX = "a backslash in a double-quoted TOML string starts an escape sequence, and \\U is not one; write Windows " \
      "paths in single quotes ('C:\\Users\\me\\sd15.safetensors') or with forward slashes " \
      '("C:/Users/me/sd15.safetensors")'
WINDOWS = 'pretrained_model_name_or_path = "C:\\Users\\me\\sd15.safetensors"\n'  # the backslash is column 36


@pytest.mark.usefixtures("test_options")
def test_windows_path_in_the_config_file(write):
    path = write("run.toml", "# run\ntest_steps = 3\n" + WINDOWS)
    assert problems("train_network", ["--config_file", str(path)]) == [
        f'{path}:3: invalid TOML: "C:\\Users\\me\\sd15.safetensors" (column 36): {FIX}'
    ]


def test_windows_path_in_the_dataset_config_and_the_gui_config(tmp_path: Path):
    dataset = tmp_path / "data.toml"
    dataset.write_text('[[datasets]]\n  [[datasets.subsets]]\n  image_dir = "D:\\data\\10_cat"\n')
    with pytest.raises(OptionError) as caught:
        load_dataset_config(dataset)
    assert caught.value.messages == [
        f'{dataset}:3: invalid TOML: "D:\\data\\10_cat" (column 18): a backslash in a double-quoted TOML string '
        "starts an escape sequence, and \\d is not one; write Windows paths in single quotes ('D:\\data\\10_cat') or "
        'with forward slashes ("D:/data/10_cat")'
    ]
    gui = tmp_path / "config.toml"
    gui.write_text("[defaults]\n" + WINDOWS.replace("pretrained_model_name_or_path", "output_dir"))
    with pytest.raises(GuiConfigError) as raised:
        load_gui_config(gui, kohya_gui.LAUNCH_KEYS)
    assert raised.value.messages == [f'{gui}:2: not valid TOML: "C:\\Users\\me\\sd15.safetensors" (column 17): {FIX}']


def test_windows_path_in_a_prompt_file(tmp_path: Path):
    prompts = tmp_path / "prompts.toml"
    prompts.write_text('[prompt]\nsample_steps = 20\n[[prompt.subset]]\nprompt = "a cat"\nnegative_prompt = "x\\y"\n')
    with pytest.raises(PromptFileError) as caught:
        load_sample_prompts(prompts)
    assert str(caught.value).startswith(f'{prompts}:5: not valid TOML: "x\\y" (column 21): a backslash in')


@pytest.mark.parametrize(
    "text, line, column, detail",
    [
        ('a = 1\n\nout = "C:\\\\out\\"\n', 3, 15, "the string does not end, because the backslash before the last quote"),
        ('x = """\nC:\\Users\n"""\n', 2, 3, "\\U is not one"),
        ("learning_rate = \n", 1, 17, "Empty value is invalid (column 17)"),
        ('a = 1\nb = "caf\xe9 \\q"\n', 2, 11, "\\q is not one"),
    ],
)
def test_position_of_other_syntax_errors(text: str, line: int, column: int, detail: str):
    with pytest.raises(TomlSyntaxError) as caught:
        load_toml(text)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert detail in caught.value.detail


def test_what_sd_scripts_reads_is_still_read(write, tmp_path: Path):
    text = "a = 'C:\\Users\\me'\nb = \"C:\\\\Users\\\\me\"\nc = '''\nC:\\Users\n'''\nd = \"\\u00e9\"\n"
    assert load_toml(text) == {"a": "C:\\Users\\me", "b": "C:\\Users\\me", "c": "C:\\Users\n", "d": "\u00e9"}
    bom = tmp_path / "bom.toml"  # Notepad's UTF-8 with a BOM: the first key keeps its name
    bom.write_bytes("\ufeff[general]\nresolution = 512\n[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'x'\n"
                    .encode())
    assert load_dataset_config(bom).datasets[0].params["resolution"] == (512, 512)


@pytest.mark.usefixtures("test_options")
def test_a_path_whose_backslashes_formed_escapes(write):
    """"D:\\train" is valid TOML, but it reads as D:<tab>rain: say so instead of "folder not found"."""
    path = write("run.toml", 'pretrained_model_name_or_path = "D:\\temp\\new.ckpt"\n')
    assert problems("train_network", ["--config_file", str(path)]) == [
        f'{path}:1: "pretrained_model_name_or_path" reads as a path with control characters: \\t, \\n in a '
        "double-quoted TOML string are escape sequences; write Windows paths in single quotes ('D:\\temp\\new.ckpt') "
        'or with forward slashes ("D:/temp/new.ckpt")'
    ]
