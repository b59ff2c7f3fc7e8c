"""Show and export a launch argv as command lines that run exactly as shown: bash and Windows cmd.exe.

Windows needs two layers of quoting. The program splits its command line with the MS C runtime
rules (`subprocess.list2cmdline` writes them); before that, cmd.exe treats `&|<>^()!"` specially
and expands `%NAME%`. Every argument after the program therefore has all of cmd's special
characters, the double quotes included, escaped with `^`: cmd then never enters a quoted region
(its quote state cannot get out of step with the runtime's) and hands the runtime-quoted text over
unchanged. `%` cannot be escaped that way: a batch file doubles it; on an interactive prompt a `^`
right after it makes any `%...%` pair name an (undefined) variable starting with `^`, which cmd
leaves alone before removing the caret. cmd has no quoting for control characters (a line break
ends the command), so a value holding one is refused.

An exported script never runs part of a value: bash gets every argument single-quoted (a line break
inside single quotes is part of the argument), the comments hold no value at all, and both scripts
are built in full before either is written, so a value one of them cannot carry writes neither.

`env` sets environment variables for the command: the GUI passes `language_env(...)`, so a command
exported or printed from the Japanese GUI gives Japanese messages outside it too (KOHYA_LANGUAGE,
backend/messages.py); nothing for English, so those commands are as they always were.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from backend.atomic import atomic_write
from backend.messages import LANGUAGE_ENV, SOURCE_LANGUAGE, msg
from backend.options.values import control_character, visible_text
from gui.backend_process import REPO, VENV_PYTHON_POSIX, VENV_PYTHON_WINDOWS

_CMD_SPECIAL = set('()!^"<>&|')
_CMD_NEEDS_QUOTES = set(" \t,;=()!^<>&|%")
# Environment variables set by an exported command: plain words, which need no quoting in either shell.
_ENV_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_VALUE = re.compile(r"^[A-Za-z0-9_.-]*$")


def language_env(language: str) -> dict[str, str]:
    """What a command run outside the GUI sets to give messages in `language` (nothing for English)."""
    return {} if language == SOURCE_LANGUAGE else {LANGUAGE_ENV: language}


def _env_items(env: Mapping[str, str] | None) -> list[tuple[str, str]]:
    items = list((env or {}).items())
    for name, value in items:
        if not (_ENV_WORD.match(name) and _ENV_VALUE.match(value)):  # a programming error, not a user's value
            raise ValueError(f"environment variable {name!r}={value!r}: only plain words can be exported")
    return items


def format_bash(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """A bash command line for `argv` (single-quoted where needed), `env` set for it alone."""
    for arg in argv:
        if "\0" in arg:  # no program can receive one; bash would drop it silently
            raise ValueError(msg(
                "gui.export.nul_character", "{value}: a command-line argument cannot hold a NUL character", value=repr(arg)
            ))  # fmt: skip
    return "".join(f"{name}={value} " for name, value in _env_items(env)) + shlex.join(argv)


def _check_cmd_text(text: str) -> None:
    if found := control_character(text):
        raise ValueError(msg(
            "gui.export.cmd_control_character", "{text} has {found}, which a Windows command line cannot carry",
            text=visible_text(text), found=found,
        ))  # fmt: skip


def _cmd_program(path: str, batch: bool) -> str:
    # The program (or a `cd` target) keeps real quotes: cmd finds a command by its quoted name,
    # and Windows paths cannot contain `"`. Inside quotes only `%` still needs care: doubled in a
    # batch file; at a prompt a `%NAME%` of a defined variable would expand (the .bat is exact).
    _check_cmd_text(path)
    if '"' in path:
        raise ValueError(msg(
            "gui.export.cmd_quote_in_path", "{path}: a Windows path cannot contain double quotes", path=repr(path)
        ))  # fmt: skip
    text = path.replace("%", "%%") if batch else path
    return f'"{text}"' if any(ch in _CMD_NEEDS_QUOTES for ch in path) else text


def _cmd_escape(text: str, batch: bool) -> str:
    """Runtime-quoted `text` with every cmd.exe special character neutralised (see the module doc)."""
    out: list[str] = []
    caret_after_percent = False
    for ch in text:
        if ch == "%":
            piece = "%%" if batch else "%"
        elif ch in _CMD_SPECIAL:
            piece = "^" + ch
        else:
            piece = ch
        if caret_after_percent and not piece.startswith("^"):
            piece = "^" + piece
        caret_after_percent = ch == "%" and not batch
        out.append(piece)
    return "".join(out)


def format_cmd(argv: Sequence[str], batch: bool = False, env: Mapping[str, str] | None = None) -> str:
    """A cmd.exe command line for `argv`: typed at a prompt, or (`batch=True`) inside a .bat file;
    `env` is set first (cmd has no per-command variables: it stays set in that console)."""
    for arg in argv:
        _check_cmd_text(arg)
    line = _cmd_program(argv[0], batch)
    if len(argv) > 1:
        line += " " + _cmd_escape(subprocess.list2cmdline(list(argv[1:])), batch)
    return "".join(f'set "{name}={value}" && ' for name, value in _env_items(env)) + line


def bash_script(argv: Sequence[str], repo: Path = REPO, env: Mapping[str, str] | None = None) -> str:
    """A bash script that runs `argv` from the repo root with its venv python (whatever argv[0] names),
    with `env` exported."""
    return (
        "#!/usr/bin/env bash\n"
        # No value in the comment: a line break in one would end the comment and run the rest.
        "# Runs from the repository root with its venv; the .bat file of the same name is the Windows equivalent.\n"
        f"cd {format_bash([str(repo)])} || exit 1\n"
        + "".join(f"export {name}={value}\n" for name, value in _env_items(env))
        + f"exec {format_bash([VENV_PYTHON_POSIX, *argv[1:]])}\n"
    )


def batch_script(argv: Sequence[str], repo: Path = REPO, env: Mapping[str, str] | None = None) -> str:
    """The cmd.exe batch file equivalent of `bash_script` (ValueError for a value cmd cannot carry);
    `env` is set after `setlocal`, so it does not stay set in a console the script was started from."""
    env_items = _env_items(env)
    lines = [
        "@echo off",
        *(["setlocal"] if env_items else []),
        "rem Runs from the repository root with its venv; the .sh file of the same name is the bash equivalent.",
        f"cd /d {_cmd_program(str(repo), batch=True)} || exit /b 1",
        *(f'set "{name}={value}"' for name, value in env_items),
        format_cmd([VENV_PYTHON_WINDOWS, *argv[1:]], batch=True),
    ]
    if not all(line.isascii() for line in lines):
        # cmd reads a batch file in the console code page; switch to UTF-8 for the lines that follow.
        lines.insert(1, "chcp 65001 >nul")
    return "\n".join(lines) + "\n"


def script_texts(
    argv: Sequence[str], name: str, repo: Path = REPO, env: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """The .sh and .bat texts for `argv`, or ValueError when a value (or the file name) cannot be
    carried: callers check with this before writing anything else."""
    if found := control_character(name):
        raise ValueError(msg("gui.export.script_name", "script name {name} has {found}", name=visible_text(name), found=found))
    return bash_script(argv, repo, env), batch_script(argv, repo, env)


def export_scripts(
    argv: Sequence[str], folder: str | os.PathLike[str], name: str, repo: Path = REPO,
    env: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:  # fmt: skip
    """Write `<folder>/<name>.sh` and `<name>.bat`, which run `argv` from the repo root with its venv
    python (whatever interpreter argv[0] names) and `env` set; returns their paths and touches nothing
    else. Both are built before either is written, so a ValueError writes nothing."""
    folder = Path(folder)
    sh_text, bat_text = script_texts(argv, name, repo, env)
    sh_path, bat_path = folder / f"{name}.sh", folder / f"{name}.bat"
    with atomic_write(sh_path, newline="\n") as f:
        f.write(sh_text)
    mode = sh_path.stat().st_mode
    sh_path.chmod(mode | (mode & 0o444) >> 2)  # executable wherever it is readable
    with atomic_write(bat_path, newline="\r\n") as f:
        f.write(bat_text)
    return sh_path, bat_path
