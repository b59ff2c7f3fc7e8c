"""Whether the Hugging Face Hub can be reached now, asked before a download is tried.

Offline, huggingface_hub retries a failed name lookup with back-off (1, 2, 4, 8 s ...) and logs
each retry, so a user without a network waited a minute and read a screen of "Retrying in 8s"
before the message that says what to do. One short connection attempt decides first; callers then
say at once what is missing and where to put it.

A proxy (HTTPS_PROXY, ALL_PROXY) is not probed through: downloads go through it, so the direct
connection may fail while downloads work. With a proxy set the probe answers "reachable" and the
download itself decides.

Standard library only.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from backend.messages import msg

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 5.0
_TRUE = ("1", "ON", "YES", "TRUE")
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def offline_mode() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: nothing may be downloaded."""
    return any(os.environ.get(name, "").upper() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_unreachable_reason(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why a download from the Hub cannot work now (offline mode, no name lookup, no connection), or None."""
    if offline_mode():
        return msg("hub.offline_mode", "HF_HUB_OFFLINE is set")
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    endpoint = os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return msg("hub.no_name_lookup", "{host} cannot be found: this machine seems to have no internet access",
                   host=host)
    except OSError as exc:
        return msg("hub.no_connection", "no connection to {host} ({reason})", host=host,
                   reason=exc.strerror or type(exc).__name__)
