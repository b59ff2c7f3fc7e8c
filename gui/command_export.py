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
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from backend.atomic import atomic_write
from backend.options.values import control_character, visible_text
from gui.command_builder import REPO, VENV_PYTHON_POSIX, VENV_PYTHON_WINDOWS

_CMD_SPECIAL = set('()!^"<>&|')
_CMD_NEEDS_QUOTES = set(" \t,;=()!^<>&|%")


def format_bash(argv: Sequence[str]) -> str:
    """A bash command line for `argv` (single-quoted where needed)."""
    for arg in argv:
        if "\0" in arg:  # no program can receive one; bash would drop it silently
            raise ValueError(f"{arg!r}: a command-line argument cannot hold a NUL character")
    return shlex.join(argv)


def _check_cmd_text(text: str) -> None:
    if found := control_character(text):
        raise ValueError(f"{visible_text(text)} has {found}, which a Windows command line cannot carry")


def _cmd_program(path: str, batch: bool) -> str:
    # The program (or a `cd` target) keeps real quotes: cmd finds a command by its quoted name,
    # and Windows paths cannot contain `"`. Inside quotes only `%` still needs care: doubled in a
    # batch file; at a prompt a `%NAME%` of a defined variable would expand (the .bat is exact).
    _check_cmd_text(path)
    if '"' in path:
        raise ValueError(f"{path!r}: a Windows path cannot contain double quotes")
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


def format_cmd(argv: Sequence[str], batch: bool = False) -> str:
    """A cmd.exe command line for `argv`: typed at a prompt, or (`batch=True`) inside a .bat file."""
    for arg in argv:
        _check_cmd_text(arg)
    line = _cmd_program(argv[0], batch)
    if len(argv) > 1:
        line += " " + _cmd_escape(subprocess.list2cmdline(list(argv[1:])), batch)
    return line


def bash_script(argv: Sequence[str], repo: Path = REPO) -> str:
    """A bash script that runs `argv` from the repo root with its venv python (whatever argv[0] names)."""
    return (
        "#!/usr/bin/env bash\n"
        # No value in the comment: a line break in one would end the comment and run the rest.
        "# Runs from the repository root with its venv; the .bat file of the same name is the Windows equivalent.\n"
        f"cd {format_bash([str(repo)])} || exit 1\n"
        f"exec {format_bash([VENV_PYTHON_POSIX, *argv[1:]])}\n"
    )


def batch_script(argv: Sequence[str], repo: Path = REPO) -> str:
    """The cmd.exe batch file equivalent of `bash_script` (ValueError for a value cmd cannot carry)."""
    lines = [
        "@echo off",
        "rem Runs from the repository root with its venv; the .sh file of the same name is the bash equivalent.",
        f"cd /d {_cmd_program(str(repo), batch=True)} || exit /b 1",
        format_cmd([VENV_PYTHON_WINDOWS, *argv[1:]], batch=True),
    ]
    if not all(line.isascii() for line in lines):
        # cmd reads a batch file in the console code page; switch to UTF-8 for the lines that follow.
        lines.insert(1, "chcp 65001 >nul")
    return "\n".join(lines) + "\n"


def script_texts(argv: Sequence[str], name: str, repo: Path = REPO) -> tuple[str, str]:
    """The .sh and .bat texts for `argv`, or ValueError when a value (or the file name) cannot be
    carried: callers check with this before writing anything else."""
    if found := control_character(name):
        raise ValueError(f"script name {visible_text(name)} has {found}")
    return bash_script(argv, repo), batch_script(argv, repo)


def export_scripts(
    argv: Sequence[str], folder: str | os.PathLike[str], name: str, repo: Path = REPO
) -> tuple[Path, Path]:
    """Write `<folder>/<name>.sh` and `<name>.bat`, which run `argv` from the repo root with its venv
    python (whatever interpreter argv[0] names); returns their paths and touches nothing else.
    Both are built before either is written, so a ValueError writes nothing."""
    folder = Path(folder)
    sh_text, bat_text = script_texts(argv, name, repo)
    sh_path, bat_path = folder / f"{name}.sh", folder / f"{name}.bat"
    with atomic_write(sh_path, newline="\n") as f:
        f.write(sh_text)
    mode = sh_path.stat().st_mode
    sh_path.chmod(mode | (mode & 0o444) >> 2)  # executable wherever it is readable
    with atomic_write(bat_path, newline="\r\n") as f:
        f.write(bat_text)
    return sh_path, bat_path
