"""Nothing about the app before login: an ASGI middleware in front of every route Gradio serves.

Gradio's own login (`launch(auth=...)`) guards only some routes. In the pinned Gradio its login page
still embeds the app's whole API description (every form default, such as the paths of
`config.toml [defaults]`, and the user's preset names), and `/gradio_api/cancel`, `/reset`,
`/heartbeat/...`, `/runs`, `/stream/...` and `/manifest.json` answer without a login. `LoginGate`
denies by default instead: without a login only the login page (rendered here, with an empty API
description), the static files it loads (Gradio's own JavaScript, CSS and fonts) and the login POST
get through (and Gradio's own start-up call); every other request gets 401 (a websocket is closed). The login itself stays Gradio's:
its form, its password check and its session cookie, read here as Gradio reads it (`App.tokens`).

Installed with `launch(app_kwargs={"middleware": [Middleware(LoginGate)]})` when a login is set;
`tests/gui/login/test_auth.py` walks Gradio's routes against a running GUI so a Gradio upgrade that adds
a route or changes the login page fails there.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

# Gradio's static files (package data, nothing of this app) that its login page loads.
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/")
PUBLIC_FILES = ("/theme.css", "/gradio_api/theme.css", "/favicon.ico")
# Gradio's launch() calls this itself, without a cookie, to run the startup events once; it answers
# only true/false.
PUBLIC_CALLS = ("/gradio_api/startup-events",)
LOGIN_POSTS = ("/login", "/login/")
# No API description on the login page: the shape the template expects, with no endpoints.
EMPTY_API_INFO: dict[str, Any] = {"named_endpoints": {}, "unnamed_endpoints": {}}


def route_path(scope: Scope) -> str:
    """The path the app routes on: without the proxy prefix (`--root_path`) when the server sees it."""
    path: str = scope["path"]
    root = scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def is_public(method: str, path: str) -> bool:
    if method == "POST":
        return path in LOGIN_POSTS
    return method in ("GET", "HEAD") and (
        path in PUBLIC_FILES or path in PUBLIC_CALLS or path.startswith(PUBLIC_PREFIXES)
    )


def logged_in(gradio_app: Any, scope: Scope) -> bool:
    """Whether the request carries a session cookie Gradio's login issued (as Gradio's `get_current_user`)."""
    cookies = HTTPConnection(scope).cookies
    cookie_id = gradio_app.cookie_id
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return token is not None and token in gradio_app.tokens


def login_page(gradio_app: Any, scope: Scope) -> Response:
    """Gradio's login page as Gradio renders it for a visitor without a login, minus the API description."""
    from gradio import route_utils
    from gradio.routes import templates

    request = Request(scope)
    blocks = gradio_app.get_blocks()
    root = route_utils.get_root_url(
        request=request,
        route_path="/",
        root_path=gradio_app.root_path or scope.get("root_path") or blocks.custom_mount_path,
    )
    config = {
        "auth_required": True,
        "auth_message": blocks.auth_message,
        "space_id": blocks.space_id,
        "root": root,
        "page": {"": {"layout": {}}},
        "pages": [""],
        "components": [],
        "dependencies": [],
        "current_page": "",
    }
    return templates.TemplateResponse(
        request=request,
        name="frontend/share.html" if blocks.share else "frontend/index.html",
        context={"base_url": "./", "config": config, "gradio_api_info": EMPTY_API_INFO},
        headers={"Cache-Control": "no-store"},
    )


class LoginGate:
    """Lets a request through only with Gradio's session cookie, except the login page and its files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        gradio_app = scope.get("app")
        if gradio_app is None or not hasattr(gradio_app, "tokens") or gradio_app.auth is None:
            # Not the app Gradio built, or built without a login: fail closed rather than serve openly.
            response: Response = JSONResponse({"detail": "the login is not set up"}, status_code=500)
            await response(scope, receive, send)
            return
        method = scope.get("method", "GET")
        path = route_path(scope)
        if logged_in(gradio_app, scope) or is_public(method, path):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if path == "/" and method in ("GET", "HEAD"):
            response = login_page(gradio_app, scope)
        else:
            # Gradio's own answer for a request without a login (its frontend reads `detail`).
            response = JSONResponse(
                {"detail": {"error": "Not authenticated", "auth_message": None}},
                status_code=401,
                headers={"Cache-Control": "no-store"},
            )
        await response(scope, receive, send)
