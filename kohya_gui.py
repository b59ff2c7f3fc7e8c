"""Entry point of the GUI: parse launch flags, build the Gradio app, serve it.

Started by ./gui.sh / gui.bat after setup; run directly with venv/bin/python kohya_gui.py.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from backend.messages import msg, set_language
from gui.gui_config import DEFAULT_CONFIG, GuiConfig, GuiConfigError, load_gui_config
from gui.i18n import available_languages, default_language
from gui.login.auth import (
    PASSWORD_ENV,
    USERNAME_ENV,
    CredentialError,
    exposure_warnings,
    password_file_warning,
    resolve_credentials,
    tensorboard_host,
)

# Gradio phones home for analytics and version checks unless told not to; this app never needs it.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


# Flags a GUI config's [launch] table may set, with their types (see gui/gui_config.py).
LAUNCH_KEYS: dict[str, type] = {
    "listen": str, "server_port": int, "inbrowser": bool, "share": bool, "headless": bool,
    "language": str, "root_path": str, "username": str, "password_file": str, "history_dir": str,
}  # fmt: skip


def launch_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Kohya-style LoRA and fine-tune trainer GUI.")
    parser.add_argument("--listen", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for LAN)")
    parser.add_argument("--server_port", type=int, default=7860, help="port to serve on (default 7860)")
    parser.add_argument("--inbrowser", action="store_true", help="open the app in the default browser")
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link")
    parser.add_argument(
        "--username", default="", help=f"require a login with this user name (default: ${USERNAME_ENV})"
    )
    parser.add_argument(
        "--password_file",
        default="",
        help=f"the login's password: the first line of this file (or set ${PASSWORD_ENV}; "
        "either keeps it out of the process list)",
    )
    parser.add_argument(
        "--password", default="", help="the login's password on the command line (visible to other users in ps)"
    )
    parser.add_argument("--root_path", default=None, help="URL prefix when served behind a reverse proxy")
    parser.add_argument(
        "--headless", action="store_true", help="server mode: no file dialogs, never opens a browser"
    )
    parser.add_argument(
        "--language",
        choices=available_languages(),
        default=None,
        help="language of the GUI (default: from the OS locale, else en)",
    )
    parser.add_argument(
        "--history_dir",
        default="",
        help="where each training run's record (TOML, form, command, log, progress, loss) and the run queue "
        "(queue.json) are kept (default: $KOHYA_GUI_HISTORY_DIR, else user_state/runs in the repo folder)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help=f"a TOML of GUI defaults ([launch] flags, [defaults] form values; see config.example.toml); "
        f"default: {DEFAULT_CONFIG.name} in the repo folder when it exists",
    )
    return parser


def parse_launch_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, GuiConfig]:
    """The launch flags, with the GUI config's [launch] values under those not given on the command line."""
    parser = launch_parser()
    args = parser.parse_args(argv)
    # Messages on the console (config and login problems) in the GUI's language: the flag, else the
    # OS locale's, until the config's [launch] language is known.
    set_language(args.language or default_language())
    path = Path(args.config) if args.config else DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None
    if path is None:
        return _with_credentials(parser, args), GuiConfig()
    try:
        config = load_gui_config(path, LAUNCH_KEYS)
    except GuiConfigError as error:
        parser.error(msg(
            "gui.launch.config_problems", "the GUI config has problems:\n  {problems}", problems="\n  ".join(error.messages)
        ))  # fmt: skip
    if "language" in config.launch and config.launch["language"] not in available_languages():
        parser.error(msg(
            "gui.launch.config_language", "{path}: [launch] language must be one of {choices}",
            path=path, choices=", ".join(available_languages()),
        ))  # fmt: skip
    given = parser.parse_args([])  # the defaults: a config value applies where the flag kept its default
    for key, value in config.launch.items():
        if getattr(args, key) == getattr(given, key):
            setattr(args, key, value)
    set_language(args.language or default_language())
    return _with_credentials(parser, args), config


def _with_credentials(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """`args.credentials`: the login from the flags, the GUI config and the environment (None: no login)."""
    try:
        args.credentials = resolve_credentials(args.username, args.password, args.password_file)
    except CredentialError as error:
        parser.error(str(error))
    return args


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    args, config = parse_launch_args(argv)
    if not port_is_free(args.listen, args.server_port):
        print(
            msg(
                "gui.launch.port_in_use",
                "error: port {port} on {host} is already in use (another GUI still running?). Stop it, or choose "
                "another port: --server_port {next_port}",
                port=args.server_port, host=args.listen, next_port=args.server_port + 1,
            ),
            file=sys.stderr,
        )
        return 2

    from starlette.middleware import Middleware

    from gui.app import CSS, build_app
    from gui.login.login_gate import LoginGate
    from gui.runs import run_history
    from gui.training import tensorboard

    credentials = args.credentials
    tensorboard.SERVER.host = tensorboard_host(args.listen, credentials)
    for warning in exposure_warnings(args.listen, args.share, credentials):
        print(warning, file=sys.stderr)
    if args.password_file and (warning := password_file_warning(args.password_file)):
        print(warning, file=sys.stderr)

    run_history.configure(args.history_dir or None)
    from gui.queue.queue_page import WORKER

    WORKER.start()  # the run queue continues where it was left (unless paused): gui/runs/run_queue.py
    app = build_app(
        language=args.language or default_language(), headless=args.headless, defaults=config.defaults
    )
    app.queue()
    app.launch(
        server_name=args.listen,
        server_port=args.server_port,
        inbrowser=args.inbrowser and not args.headless,
        css=CSS,
        share=args.share,
        auth=credentials.as_gradio_auth() if credentials else None,
        # With a login, nothing about the app is served before it (Gradio's own check leaves gaps).
        app_kwargs={"middleware": [Middleware(LoginGate)]} if credentials else None,
        root_path=args.root_path,
        # Server-side rendering would put a Node proxy in front of the login gate; keep it off.
        ssr_mode=False,
        # Gradio's "is localhost reachable" self-check gives up after one 3 s request, so on a busy
        # machine it aborts a GUI that is serving fine. The port was checked above; a proxy that
        # blocks localhost shows in the browser instead. (`_frontend` gates only that check in the
        # pinned Gradio; tests/test_gui_start.py fails if that stops being true.)
        _frontend=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
