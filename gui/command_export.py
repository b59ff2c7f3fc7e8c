"""Show and export a launch argv as command lines that run exactly as shown: bash and Windows cmd.exe.

Windows needs two layers of quoting. The program splits its command line with the MS C runtime
rules (`subprocess.list2cmdline` writes them); before that, cmd.exe treats `&|<>^()!"` specially
and expands `%NAME%`. Every argument after the program therefore has all of cmd's special
characters, the double quotes included, escaped with `^`: cmd then never enters a quoted region
(its quote state cannot get out of step with the runtime's) and hands the runtime-quoted text over
unchanged. `%` cannot be escaped that way: a batch file doubles it; on an interactive prompt a `^`
right after it makes any `%...%` pair name an (undefined) variable starting with `^`, which cmd
leaves alone before removing the caret.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from backend.atomic import atomic_write
from gui.command_builder import REPO, VENV_PYTHON_POSIX, VENV_PYTHON_WINDOWS

_CMD_SPECIAL = set('()!^"<>&|')
_CMD_NEEDS_QUOTES = set(" \t,;=()!^<>&|%")


def format_bash(argv: Sequence[str]) -> str:
    """A bash command line for `argv` (single-quoted where needed)."""
    return shlex.join(argv)


def _check_cmd_text(text: str) -> None:
    if any(ch in text for ch in "\r\n\0"):
        raise ValueError(f"{text!r}: a Windows command line cannot carry line breaks or NUL characters")


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


def export_scripts(
    argv: Sequence[str], folder: str | os.PathLike[str], name: str, repo: Path = REPO
) -> tuple[Path, Path]:
    """Write `<folder>/<name>.sh` and `<name>.bat`, which run `argv` from the repo root with its venv
    python (whatever interpreter argv[0] names); returns their paths and touches nothing else."""
    folder = Path(folder)
    args = list(argv[1:])
    sh_path = folder / f"{name}.sh"
    with atomic_write(sh_path, newline="\n") as f:
        f.write(
            "#!/usr/bin/env bash\n"
            f"# Runs from the repository root with its venv; {name}.bat is the Windows equivalent.\n"
            f"cd {shlex.quote(str(repo))} || exit 1\n"
            f"exec {format_bash([VENV_PYTHON_POSIX, *args])}\n"
        )
    mode = sh_path.stat().st_mode
    sh_path.chmod(mode | (mode & 0o444) >> 2)  # executable wherever it is readable

    bat_lines = [
        "@echo off",
        f"rem Runs from the repository root with its venv; {name}.sh is the bash equivalent.",
        f"cd /d {_cmd_program(str(repo), batch=True)} || exit /b 1",
        format_cmd([VENV_PYTHON_WINDOWS, *args], batch=True),
    ]
    if not all(line.isascii() for line in bat_lines):
        # cmd reads a batch file in the console code page; switch to UTF-8 for the lines that follow.
        bat_lines.insert(1, "chcp 65001 >nul")
    bat_path = folder / f"{name}.bat"
    with atomic_write(bat_path, newline="\r\n") as f:
        f.write("\n".join(bat_lines) + "\n")
    return sh_path, bat_path
