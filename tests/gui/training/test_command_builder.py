"""The command builder: run TOML and snapshot, the accelerate launch argv, bash/cmd quoting, exported scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.options import OptionError, parse_args
from backend.options import schema as option_schema
from backend.options.schema import Option
from gui.backend_process import REPO, venv_python
from gui.training.command_builder import (
    build_command,
    prepare_run,
    write_run_config,
    write_snapshot,
)
from gui.training.command_export import export_scripts, format_bash, format_cmd, language_env

HEAVY_MODULES = ("torch", "diffusers", "transformers", "accelerate", "gradio")
# Arguments that break naive quoting in one shell or the other.
TRICKY = [
    "/data/my run/train",
    "C:\\データ\\学習 セット\\run.toml",
    'say "hi"',
    "it's",
    "a&b|c<d>e^f",
    "50% off",
    "%PATH%",
    "100%",
    "",
    "trailing\\",
    'ends with quote\\"',
    "(paren) !bang! $HOME `x` ;",
]


def base_values(tmp_path: Path, **extra: object) -> dict[str, object]:
    return {
        "pretrained_model_name_or_path": str(tmp_path / "model.safetensors"),
        "output_dir": str(tmp_path / "out"),
        "output_name": "my lora",
        **extra,
    }


def test_gui_modules_import_no_heavy_library() -> None:
    code = (
        "import json, sys; import gui.training.command_builder, gui.training.command_export, gui.runs.runner; "
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


# ---- run config ---------------------------------------------------------------------------------


def test_run_config_holds_only_non_defaults_and_round_trips(tmp_path: Path) -> None:
    values = base_values(
        tmp_path,
        network_dim=8,
        learning_rate=2e-6,  # the default: left out
        max_train_steps=300,
        mixed_precision="no",  # the default
        caption_extension=".txt",
        network_args=("conv_dim=4", "conv_alpha=1"),
        shuffle_caption=True,
        flip_aug=False,  # the default
        resolution="",  # an empty text box: not set
    )
    path = write_run_config("train_network", values, tmp_path / "run.toml")
    text = path.read_text(encoding="utf-8")
    for name in ("learning_rate", "mixed_precision", "flip_aug", "resolution"):
        assert name not in text
    parsed = parse_args("train_network", ["--config_file", str(path)])
    assert parsed.network_dim == 8 and parsed.max_train_steps == 300 and parsed.shuffle_caption
    assert parsed.network_args == ["conv_dim=4", "conv_alpha=1"]
    assert parsed.output_name == "my lora" and parsed.output_dir == str(tmp_path / "out")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "atomic write left a temp file"


def test_run_config_accepts_what_widgets_hand_over(tmp_path: Path) -> None:
    # Gradio numbers come as 8.0 for integer fields; paths may be Path objects.
    values = base_values(tmp_path, network_dim=8.0, train_data_dir=tmp_path / "train")
    text = write_run_config("train_network", values, tmp_path / "run.toml").read_text(encoding="utf-8")
    assert "network_dim = 8\n" in text
    assert f"train_data_dir = {json.dumps(str(tmp_path / 'train'))}" in text


def test_run_config_reports_every_problem_by_option_name(tmp_path: Path) -> None:
    values = {
        "output_dir": str(tmp_path),
        "network_dimm": 4,
        "max_train_steps": "ten",
        "mixed_precision": "fp17",
        "config_file": "other.toml",
        "network_dim": 2.5,
    }
    with pytest.raises(OptionError) as caught:
        write_run_config("train_network", values, tmp_path / "run.toml")
    messages = caught.value.messages
    assert any('"network_dimm"' in m and '"network_dim"' in m for m in messages), messages
    assert any(m.startswith('"max_train_steps" expects an integer') for m in messages), messages
    assert any(m.startswith('"mixed_precision" must be one of') for m in messages), messages
    assert any(m.startswith('"config_file" works only on the command line') for m in messages), messages
    assert any(m.startswith('"network_dim" expects an integer') for m in messages), messages
    assert any(m == '"pretrained_model_name_or_path" is required' for m in messages), messages
    assert not (tmp_path / "run.toml").exists()


def test_run_config_rejects_options_of_another_command(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match='"network_dim" is not accepted by fine_tune'):
        write_run_config("fine_tune", base_values(tmp_path, network_dim=4), tmp_path / "run.toml")


def test_secrets_reach_neither_the_toml_nor_the_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = Option("hub_token", "str", None, "A token.", "logging", secret=True)
    monkeypatch.setitem(option_schema._REGISTRY, secret.name, secret)
    values = base_values(tmp_path, hub_token="hf_SECRET1")
    toml_text = write_run_config("train_network", values, tmp_path / "run.toml").read_text(encoding="utf-8")
    extra = {"huggingface_token": "hf_SECRET2", "wandb_api_key": "SECRET3", "LoRA_type": "Standard"}
    snapshot_text = write_snapshot("train_network", values, tmp_path / "run.json", extra).read_text(encoding="utf-8")
    for text in (toml_text, snapshot_text):
        assert "SECRET" not in text
    assert json.loads(snapshot_text)["LoRA_type"] == "Standard"


def test_prepare_run_writes_config_and_snapshot_beside_the_outputs(tmp_path: Path) -> None:
    values = base_values(tmp_path, network_dim=4, max_train_steps=10, seed=None)
    accelerate = {"num_processes": 1, "mixed_precision": "bf16", "multi_gpu": False}
    run = prepare_run("train_network", values, accelerate, extra={"LoRA_type": "Standard"}, python="py", when=0)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(0))
    out = tmp_path / "out"
    assert run.config_path == out / f"my lora_{stamp}.toml"
    assert run.snapshot_path == out / f"my lora_{stamp}.json"
    snapshot = json.loads(run.snapshot_path.read_text(encoding="utf-8"))
    # The whole form, unset fields included, so loading it restores the form exactly.
    assert snapshot == {
        "command": "train_network", **values, "LoRA_type": "Standard", "accelerate": accelerate,
    }
    assert run.argv == [
        "py", "-m", "accelerate.commands.launch", "--quiet", "--num_processes", "1", "--mixed_precision", "bf16",
        "-m", "backend.train_network", "--config_file", str(run.config_path),
    ]


def test_prepare_run_writes_nothing_when_a_value_is_bad(tmp_path: Path) -> None:
    with pytest.raises(OptionError):
        prepare_run("train_network", base_values(tmp_path, max_train_steps=0))
    with pytest.raises(ValueError, match="num_procs"):
        prepare_run("train_network", base_values(tmp_path), {"num_procs": 2})
    assert not (tmp_path / "out").exists()


# ---- launch argv --------------------------------------------------------------------------------


def test_build_command_passes_only_the_accelerate_settings_that_are_set(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    assert build_command("sdxl_train_network", config) == [
        venv_python(), "-m", "accelerate.commands.launch", "--quiet", "-m", "backend.sdxl_train_network",
        "--config_file", str(config),
    ]
    every = {
        "config_file": "ds.yaml", "cpu": False, "multi_gpu": True, "gpu_ids": "0,1", "num_processes": 2.0,
        "num_machines": "1", "machine_rank": 0, "main_process_ip": "10.0.0.1", "main_process_port": 29500,
        "mixed_precision": "fp16", "num_cpu_threads_per_process": 2, "dynamo_backend": "",
    }
    argv = build_command("train_network", config, every, python="py", trainer_args=["--preflight"])
    assert argv == [
        "py", "-m", "accelerate.commands.launch", "--quiet", "--config_file", "ds.yaml", "--multi_gpu", "--gpu_ids", "0,1",
        "--num_processes", "2", "--num_machines", "1", "--machine_rank", "0", "--main_process_ip", "10.0.0.1",
        "--main_process_port", "29500", "--mixed_precision", "fp16", "--num_cpu_threads_per_process", "2",
        "-m", "backend.train_network", "--config_file", str(config), "--preflight",
    ]


def test_accelerate_accepts_the_flags_by_name() -> None:
    """The flag names are accelerate's own (checked with its parser, as `accelerate launch` reads them)."""
    from accelerate.commands.launch import launch_command_parser

    every = {
        "config_file": "ds.yaml", "cpu": True, "multi_gpu": True, "gpu_ids": "0,1", "num_processes": 2,
        "num_machines": 2, "machine_rank": 1, "main_process_ip": "10.0.0.1", "main_process_port": 29500,
        "mixed_precision": "bf16", "num_cpu_threads_per_process": 4, "dynamo_backend": "inductor",
    }
    argv = build_command("train_network", "run.toml", every, python="py")
    parsed = launch_command_parser().parse_args(argv[3:])
    assert parsed.module and parsed.training_script == "backend.train_network"
    assert parsed.training_script_args == ["--config_file", str(Path("run.toml").resolve())]
    for name, value in every.items():
        assert getattr(parsed, name) == value, name


@pytest.mark.parametrize(
    ("settings", "match"),
    [({"num_processes": "two"}, "num_processes.*integer"), ({"multi_gpu": "yes"}, "multi_gpu.*true or false")],
)
def test_bad_accelerate_settings_are_named(settings: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_command("train_network", "run.toml", settings)


def test_unknown_command_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown command 'train_lora'"):
        build_command("train_lora", "run.toml")


# ---- quoting ------------------------------------------------------------------------------------


def test_bash_golden() -> None:
    argv = ["/opt/my app/venv/bin/python", "-m", "x", "--config_file", "/data/学習 セット/it's & 50%.toml", ""]
    assert format_bash(argv) == (
        "'/opt/my app/venv/bin/python' -m x --config_file '/data/学習 セット/it'\"'\"'s & 50%.toml' ''"
    )


def test_bash_line_runs_as_shown() -> None:
    argv = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", *TRICKY]
    result = subprocess.run(["bash", "-c", format_bash(argv)], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == TRICKY


def test_cmd_golden() -> None:
    argv = [
        "C:\\Program Files\\kohya\\venv\\Scripts\\python.exe", "-m", "accelerate.commands.launch",
        "--config_file", "C:\\データ\\my run & co\\50% off\\run.toml", "--caption", 'say "hi" (1)', "%PATH%", "",
    ]
    assert format_cmd(argv) == (
        '"C:\\Program Files\\kohya\\venv\\Scripts\\python.exe" -m accelerate.commands.launch '
        '--config_file ^"C:\\データ\\my run ^& co\\50%^ off\\run.toml^" '
        '--caption ^"say \\^"hi\\^" ^(1^)^" %^PATH%^ ^"^"'
    )
    assert format_cmd(argv, batch=True) == (
        '"C:\\Program Files\\kohya\\venv\\Scripts\\python.exe" -m accelerate.commands.launch '
        '--config_file ^"C:\\データ\\my run ^& co\\50%% off\\run.toml^" '
        '--caption ^"say \\^"hi\\^" ^(1^)^" %%PATH%% ^"^"'
    )
    assert format_cmd(["C:\\100%\\python.exe"], batch=True) == '"C:\\100%%\\python.exe"'


def _cmd_phases(line: str, batch: bool) -> str:
    """What cmd.exe hands to the program for the argument part of our lines, which never enter a
    cmd-quoted region: %% becomes % in a batch file (our ^-prefixed %...% names are undefined at a
    prompt), then each ^ escapes the next character."""
    if batch:
        line = line.replace("%%", "%")
    out, i = [], 0
    while i < len(line):
        if line[i] == "^":
            i += 1
        out.append(line[i])
        i += 1
    return "".join(out)


def _msvcrt_split(line: str) -> list[str]:
    """The MS C runtime's argv splitting (what python.exe does with its command line)."""
    args: list[str] = []
    current: list[str] = []
    in_arg = in_quotes = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            j = i
            while j < len(line) and line[j] == "\\":
                j += 1
            count = j - i
            if j < len(line) and line[j] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    j += 1
            else:
                current.append("\\" * count)
            in_arg, i = True, j
            continue
        if ch == '"':
            if in_quotes and line[i + 1 : i + 2] == '"':
                current.append('"')
                i += 2
                continue
            in_quotes, in_arg = not in_quotes, True
        elif ch in " \t" and not in_quotes:
            if in_arg:
                args.append("".join(current))
            current, in_arg = [], False
        else:
            current.append(ch)
            in_arg = True
        i += 1
    if in_arg:
        args.append("".join(current))
    return args


@pytest.mark.parametrize("batch", [False, True])
def test_cmd_line_reaches_the_program_unchanged(batch: bool) -> None:
    line = format_cmd(["python.exe", *TRICKY], batch=batch)
    program, rest = line.split(" ", 1)
    assert program == "python.exe"
    assert _msvcrt_split(_cmd_phases(rest, batch)) == TRICKY


def test_cmd_refuses_line_breaks() -> None:
    with pytest.raises(ValueError, match="line break"):
        format_cmd(["python.exe", "two\nlines"])


# ---- exported scripts ---------------------------------------------------------------------------


def test_exported_scripts_run_the_same_command(tmp_path: Path) -> None:
    folder = tmp_path / "scripts folder"
    argv = ["/elsewhere/python", "-c", "import json, os, sys; print(json.dumps([os.getcwd(), *sys.argv[1:]]))",
            *TRICKY]
    sh, bat = export_scripts(argv, folder, "run 1")
    assert sorted(p.name for p in folder.iterdir()) == ["run 1.bat", "run 1.sh"], "only the two scripts"
    assert os.access(sh, os.X_OK)
    tail = format_bash(argv[1:])
    assert sh.read_text(encoding="utf-8") == (
        "#!/usr/bin/env bash\n"
        "# Runs from the repository root with its venv; the .bat file of the same name is the Windows equivalent.\n"
        f"cd {format_bash([str(REPO)])} || exit 1\n"
        f"exec venv/bin/python {tail}\n"
    )
    bat_text = bat.read_bytes().decode("utf-8")
    assert bat_text.startswith("@echo off\r\nchcp 65001 >nul\r\n"), "UTF-8 code page for the Japanese argument"
    assert bat_text.endswith(format_cmd(["venv\\Scripts\\python.exe", *argv[1:]], batch=True) + "\r\n")
    assert f"\r\ncd /d {REPO} || exit /b 1\r\n" in bat_text
    if not (REPO / "venv/bin/python").exists():
        pytest.skip("no repo venv to run the .sh with")
    result = subprocess.run([str(sh)], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == [str(REPO), *TRICKY]


def test_commands_from_the_japanese_gui_give_japanese_messages_outside_it(tmp_path: Path) -> None:
    """Issue 14, item 21: the trainer and tools speak the GUI's language (KOHYA_LANGUAGE); a command
    printed or exported from the Japanese GUI sets it, one from the English GUI stays as it was."""
    assert language_env("en") == {}
    env = language_env("ja")
    argv = [sys.executable, "-c", "import os; print(os.environ.get('KOHYA_LANGUAGE'))"]
    line = format_bash(argv, env)
    assert line == "KOHYA_LANGUAGE=ja " + format_bash(argv)
    assert subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True).stdout.strip() == "ja"
    assert format_cmd(argv, env=env) == 'set "KOHYA_LANGUAGE=ja" && ' + format_cmd(argv)
    sh, bat = export_scripts(argv, tmp_path, "run", env=env)
    assert "\nexport KOHYA_LANGUAGE=ja\nexec " in sh.read_text(encoding="utf-8")
    bat_lines = bat.read_text(encoding="utf-8").splitlines()
    assert bat_lines[:2] == ["@echo off", "setlocal"]  # the variable does not outlive the script
    assert bat_lines[-2:] == ['set "KOHYA_LANGUAGE=ja"', format_cmd(["venv\\Scripts\\python.exe", *argv[1:]], batch=True)]
    sh_en, bat_en = export_scripts(argv, tmp_path / "en", "run")
    assert "KOHYA_LANGUAGE=" not in sh_en.read_text(encoding="utf-8") + bat_en.read_text(encoding="utf-8")
    if (REPO / "venv/bin/python").exists():
        assert subprocess.run([str(sh)], capture_output=True, text=True, check=True).stdout.strip() == "ja"


def test_ascii_batch_file_keeps_the_console_code_page(tmp_path: Path) -> None:
    _, bat = export_scripts(["python", "-m", "backend.train_network"], tmp_path, "run")
    assert "chcp" not in bat.read_text(encoding="utf-8")


def test_a_bad_required_value_is_reported_once(tmp_path: Path) -> None:
    with pytest.raises(OptionError) as caught:
        write_run_config("train_network", base_values(tmp_path, output_dir=3), tmp_path / "run.toml")
    assert caught.value.messages == ['"output_dir" expects a path (a string), got 3 (an integer)']
