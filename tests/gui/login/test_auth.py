"""The GUI's login: where the password may come from, warnings about an open GUI, and (against a
running `kohya_gui.py`) that nothing about the app is served before logging in.

The running-GUI tests walk every route the pinned Gradio registers, so a Gradio upgrade that adds
a route, or changes its login page, is caught here.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import kohya_gui
from gui.login.auth import (
    PASSWORD_ENV,
    USERNAME_ENV,
    CredentialError,
    exposure_warnings,
    password_file_warning,
    read_password_file,
    resolve_credentials,
    tensorboard_host,
)
from gui.login.login_gate import is_public
from gui.training.form_state import STATE_DIR_ENV
from gui.training.presets import USER_DIR

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")  # as tests/gui/test_browser.py (not imported: it skips without playwright)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SECRET_PATH = "/nowhere/SECRET_DEFAULT_MODEL_7c1f.safetensors"
USER, PASSWORD = "trainer", "correct horse"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- where the login comes from ------------------------------------------------------------------


def test_password_from_the_flag_a_file_or_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from a file\n", encoding="utf-8")
    env = {USERNAME_ENV: "envuser", PASSWORD_ENV: "from env"}
    assert resolve_credentials("u", "p", None, {}).as_gradio_auth() == ("u", "p")
    assert resolve_credentials("u", None, secret, {}).as_gradio_auth() == ("u", "from a file")
    assert resolve_credentials(None, None, None, env).as_gradio_auth() == ("envuser", "from env")
    # A flag wins over its variable.
    assert resolve_credentials("u", None, secret, env).as_gradio_auth() == ("u", "from a file")
    assert resolve_credentials(None, None, None, {}) is None


@pytest.mark.parametrize(
    ("username", "password", "use_file", "env", "message"),
    [
        ("u", "p", True, {}, "not both"),
        ("u", None, False, {}, "needs a password"),
        (None, "p", False, {}, "needs a user name"),
        (None, None, False, {PASSWORD_ENV: "p"}, USERNAME_ENV),  # never an open GUI by mistake
        ("  ", "p", False, {}, "needs a user name"),
    ],
)
def test_an_incomplete_login_is_an_error(
    tmp_path: Path, username: str | None, password: str | None, use_file: bool, env: dict, message: str
) -> None:
    secret = tmp_path / "password"
    secret.write_text("x\n", encoding="utf-8")
    with pytest.raises(CredentialError, match=message):
        resolve_credentials(username, password, secret if use_file else None, env)


def test_password_file_problems_are_named(tmp_path: Path) -> None:
    for text, message in (("\n", "first line is empty"), ("a\nb\n", "more than one line")):
        path = tmp_path / "password"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(CredentialError, match=message):
            read_password_file(path)
    with pytest.raises(CredentialError, match="cannot read"):
        read_password_file(tmp_path / "missing")
    path.write_text("secret\r\n", encoding="utf-8")
    assert read_password_file(path) == "secret"
    if sys.platform != "win32":
        path.chmod(0o644)
        assert "chmod 600" in (password_file_warning(path) or "")
        path.chmod(0o600)
        assert password_file_warning(path) is None


def test_launch_flags_and_gui_config_give_the_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.delenv(USERNAME_ENV, raising=False)
    secret = tmp_path / "password"
    secret.write_text("s3cret\n", encoding="utf-8")
    args, _ = kohya_gui.parse_launch_args(["--username", "me", "--password_file", str(secret)])
    assert args.credentials.as_gradio_auth() == ("me", "s3cret")
    config = tmp_path / "gui.toml"
    config.write_text(f'[launch]\nusername = "cfg"\npassword_file = {str(secret)!r}\n', encoding="utf-8")
    args, _ = kohya_gui.parse_launch_args(["--config", str(config)])
    assert args.credentials.as_gradio_auth() == ("cfg", "s3cret")
    monkeypatch.setenv(PASSWORD_ENV, "p")
    with pytest.raises(SystemExit):  # a password in the environment and no user name anywhere
        kohya_gui.parse_launch_args([])


def test_an_open_gui_reachable_from_elsewhere_is_warned_about() -> None:
    login = resolve_credentials("u", None, None, {PASSWORD_ENV: "p"})
    assert exposure_warnings("127.0.0.1", False, None) == []
    assert exposure_warnings("localhost", False, None) == []
    assert "WITHOUT a login" in exposure_warnings("0.0.0.0", False, None)[0]
    assert "WITHOUT a login" in exposure_warnings("::", False, None)[0]
    assert "share link" in exposure_warnings("127.0.0.1", True, None)[0]
    on_command_line = resolve_credentials("u", "p", None, {})
    assert "process list" in exposure_warnings("127.0.0.1", False, on_command_line)[0]
    # TensorBoard has no login: behind one it stays on this machine.
    assert "TensorBoard" in exposure_warnings("0.0.0.0", False, login)[0]
    assert (tensorboard_host("0.0.0.0", login), tensorboard_host("0.0.0.0", None)) == ("127.0.0.1", "0.0.0.0")


# --- a running GUI with a login -------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked_gui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A GUI with a login, a [defaults] path and a user preset: (url, preset name)."""
    folder = tmp_path_factory.mktemp("locked-gui")
    config = folder / "config.toml"
    config.write_text(f'[defaults]\npretrained_model_name_or_path = "{SECRET_PATH}"\n', encoding="utf-8")
    preset_name = f"SECRETPRESET-{uuid.uuid4().hex[:8]}"
    preset = USER_DIR / f"{preset_name}.json"
    USER_DIR.mkdir(parents=True, exist_ok=True)
    preset.write_text('{"learning_rate": 0.0001}', encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "kohya_gui.py", "--headless", "--server_port", str(port), "--config", str(config),
         "--username", USER, "--password", PASSWORD],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, STATE_DIR_ENV: str(folder / "state")},  # the form's state file, not the repo's
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                httpx.get(f"{url}/", timeout=5)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        yield url, preset_name
    finally:
        process.terminate()
        process.wait(timeout=60)
        preset.unlink(missing_ok=True)


def gradio_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the pinned Gradio registers, path parameters filled in."""
    import gradio as gr
    from gradio.routes import App

    with gr.Blocks() as blocks:
        gr.Textbox()
    app = App.create_app(blocks.queue())
    found: list[tuple[str, str]] = []

    def walk(routes: list, prefix: str) -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # an included APIRouter (FastAPI keeps it whole)
                walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif hasattr(route, "path"):
                path = re.sub(r"\{[^}]+\}", "x", prefix + route.path)
                found.extend((method, path) for method in sorted(getattr(route, "methods", None) or {"GET"}))

    walk(app.routes, "")
    assert ("POST", "/gradio_api/cancel") in found and len(found) > 60  # the walk saw Gradio's API router
    return found


def fetch(client: httpx.Client, method: str, url: str) -> tuple[int, str]:
    """Status and body; an endless stream (server-sent events) is read until it pauses."""
    body = b""
    with client.stream(method, url, json={"session_hash": "x", "fn_index": 0, "data": []}) as response:
        try:
            for chunk in response.iter_bytes():
                body += chunk
        except httpx.ReadTimeout:
            pass
    return response.status_code, body.decode("utf-8", "replace")


def test_nothing_about_the_app_is_served_before_login(locked_gui: tuple[str, str]) -> None:
    url, preset_name = locked_gui
    routes = sorted({*gradio_routes(), ("GET", "/file=/etc/hostname"), ("GET", "/gradio_api/file=/etc/hostname")})
    leaks: list[str] = []
    with httpx.Client(timeout=httpx.Timeout(10, read=3)) as client:
        for method, path in routes:
            status, body = fetch(client, method, url + path)
            if SECRET_PATH in body or preset_name in body or "Kohya" in body:
                leaks.append(f"{method} {path}: {status} shows app data")
            elif path == "/" and method in ("GET", "HEAD"):
                if status != 200 or (method == "GET" and '"auth_required":true' not in body):
                    leaks.append(f"{method} {path}: not the login page ({status})")
            elif not is_public(method, path) and status != 401:
                leaks.append(f"{method} {path}: {status} without a login")
    assert leaks == []


def test_after_logging_in_the_app_is_served(locked_gui: tuple[str, str]) -> None:
    url, _ = locked_gui
    with httpx.Client(timeout=30) as client:
        assert client.post(f"{url}/login", data={"username": USER, "password": "wrong"}).status_code == 400
        assert client.get(f"{url}/config").status_code == 401
        assert client.post(f"{url}/login", data={"username": USER, "password": PASSWORD}).status_code == 200
        page = client.get(f"{url}/").text
        assert SECRET_PATH in page  # the form's default, now that the user is logged in
        assert client.get(f"{url}/config").status_code == 200
        assert client.get(f"{url}/gradio_api/info").status_code == 200


def test_the_login_page_in_a_browser(locked_gui: tuple[str, str]) -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    url, _ = locked_gui
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/", timeout=180_000)
            page.get_by_label("username").fill(USER)
            page.get_by_label("password").fill(PASSWORD)
            page.get_by_role("button", name="Login").click()
            page.wait_for_selector("#model_type", timeout=180_000)  # the app, built from its config
            sync_api.expect(page.get_by_role("button", name="Login")).to_have_count(0)
        finally:
            browser.close()


def test_launch_parser_documents_every_password_source() -> None:
    text = kohya_gui.launch_parser().format_help()
    assert "--password_file" in text and PASSWORD_ENV in text and USERNAME_ENV in text
    assert isinstance(kohya_gui.launch_parser().parse_args([]), argparse.Namespace)
