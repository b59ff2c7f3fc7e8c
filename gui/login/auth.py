"""Who may use the GUI: the login's user name and password, and warnings about an open GUI.

The password can come from three places, so it need not sit on the command line where every user
of the machine sees it (`ps`): `--password`, `--password_file FILE` (the first line of the file) or
the `KOHYA_GUI_PASSWORD` environment variable; the user name from `--username` or
`KOHYA_GUI_USERNAME`. Enforcing the login is `gui/login/login_gate.py`'s job. Light: no gradio.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from backend.messages import msg

USERNAME_ENV = "KOHYA_GUI_USERNAME"
PASSWORD_ENV = "KOHYA_GUI_PASSWORD"


class CredentialError(ValueError):
    """The login settings cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    password_source: str  # "--password", "--password_file FILE" or the environment variable's name

    def as_gradio_auth(self) -> tuple[str, str]:
        return (self.username, self.password)


def read_password_file(path: str | os.PathLike[str]) -> str:
    """The password in `path`: its first line without the line break (as `echo secret > file` writes it)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise CredentialError(msg(
            "gui.auth.password_file_unreadable", "--password_file {path}: cannot read it: {reason}", path=path,
            reason=str(reason),
        )) from None  # fmt: skip
    lines = text.splitlines()
    password = lines[0] if lines else ""
    if not password:
        raise CredentialError(msg(
            "gui.auth.password_file_empty", "--password_file {path}: the first line is empty; write the password on it",
            path=path,
        ))  # fmt: skip
    if any(line.strip() for line in lines[1:]):
        raise CredentialError(msg(
            "gui.auth.password_file_lines",
            "--password_file {path}: holds more than one line; keep only the password in it", path=path,
        ))  # fmt: skip
    return password


def password_file_warning(path: str | os.PathLike[str]) -> str | None:
    """A warning when other users of this machine can read the password file (POSIX permissions only)."""
    if os.name == "nt":
        return None
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return msg(
            "gui.auth.password_file_readable",
            "warning: --password_file {path} can be read by other users of this machine; chmod 600 {path}", path=path,
        )
    return None


def resolve_credentials(
    username: str | None,
    password: str | None,
    password_file: str | os.PathLike[str] | None,
    environ: Mapping[str, str] = os.environ,
) -> Credentials | None:
    """The login from the flags and the environment (a flag wins over its variable), or None for no
    login. A password without a user name, or the reverse, is an error: never an open GUI by mistake."""
    if password and password_file:
        raise CredentialError(msg("gui.auth.two_passwords", "give the password once: --password or --password_file, not both"))
    if password:
        secret, source = password, "--password"
    elif password_file:
        secret, source = read_password_file(password_file), f"--password_file {password_file}"
    else:
        secret, source = environ.get(PASSWORD_ENV, ""), PASSWORD_ENV
    # Gradio's login form strips the name it receives; a name with outer spaces could never log in.
    name = (username or environ.get(USERNAME_ENV, "")).strip()
    if not name and not secret:
        return None
    if not secret:
        raise CredentialError(msg(
            "gui.auth.password_missing",
            "a user name needs a password: give --password_file FILE, set {variable}, or --password",
            variable=PASSWORD_ENV,
        ))  # fmt: skip
    if not name:
        raise CredentialError(msg(
            "gui.auth.username_missing", "a password ({source}) needs a user name: give --username or set {variable}",
            source=source, variable=USERNAME_ENV,
        ))  # fmt: skip
    return Credentials(name, secret, source)


def reachable_from_other_machines(listen: str) -> bool:
    """Whether a server bound to `listen` answers other machines (anything but a loopback address)."""
    host = listen.strip().strip("[]")
    if host.lower() == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: assume it resolves to a reachable interface
        return True


def exposure_warnings(listen: str, share: bool, credentials: Credentials | None) -> list[str]:
    """What to tell the user on the console before serving: an open GUI reachable from elsewhere,
    a password given where other users can read it."""
    warnings: list[str] = []
    if credentials is None and (share or reachable_from_other_machines(listen)):
        if share:
            warnings.append(msg(
                "gui.auth.open_share",
                "warning: with a public share link the GUI is reachable from other machines WITHOUT a login; anyone "
                "who reaches it can read and write files and run programs as you. Set a login: --username NAME with "
                "--password_file FILE (or {variable}).",
                variable=PASSWORD_ENV,
            ))  # fmt: skip
        else:
            warnings.append(msg(
                "gui.auth.open_listen",
                "warning: with --listen {listen} the GUI is reachable from other machines WITHOUT a login; anyone "
                "who reaches it can read and write files and run programs as you. Set a login: --username NAME with "
                "--password_file FILE (or {variable}).",
                listen=listen, variable=PASSWORD_ENV,
            ))  # fmt: skip
    if credentials is not None and reachable_from_other_machines(listen):
        warnings.append(msg(
            "gui.auth.tensorboard_local",
            "note: TensorBoard (the TensorBoard button) has no login, so with a login it is served on 127.0.0.1 "
            "only; open it on this machine or through an SSH tunnel.",
        ))  # fmt: skip
    if credentials is not None and credentials.password_source == "--password":
        warnings.append(msg(
            "gui.auth.password_visible",
            "note: --password is visible to other users of this machine in the process list; prefer "
            "--password_file FILE or the {variable} environment variable.",
            variable=PASSWORD_ENV,
        ))  # fmt: skip
    return warnings


def tensorboard_host(listen: str, credentials: Credentials | None) -> str:
    """Where TensorBoard may listen: it has no login, so behind one it stays on this machine."""
    return "127.0.0.1" if credentials is not None else listen
