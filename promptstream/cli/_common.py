"""What the commands share: the one-line failure, the API key, and the optional extras."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._config import ENV_API_KEY, resolve_api_key

__all__ = ["CommandError", "api_key_or_fail", "display_url", "server_module", "unreachable"]

SERVER_EXTRA_HINT = "the reference server needs its extra: pip install 'promptstream[server]'"


class CommandError(Exception):
    """A failure to report as one line with exit code 1."""


def server_module() -> Any:
    try:
        from promptstream import server
    except ImportError as exc:
        raise CommandError(f"{SERVER_EXTRA_HINT} ({exc})") from None
    return server


def display_url(url: str) -> str:
    """``url`` as safe to print: scheme, host, port and path; never the userinfo (``user:password@``), the query or
    the fragment, where a secret may hide."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not a URL we can take apart: say nothing of it rather than something secret
        return "(the configured base URL)"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def unreachable(url: str, detail: str, *secrets: str) -> CommandError:
    """The one line for "the server is down": which URL was tried, and why, with any secret scrubbed from why."""
    parts = urlsplit(url)
    for secret in (*secrets, parts.username or "", parts.password or "", parts.query):
        if len(secret) >= 3:
            detail = detail.replace(secret, "***")
    return CommandError(f"cannot reach the server at {display_url(url)}: {detail}")


def api_key_or_fail(api_key: str | None) -> str:
    if not (api_key or os.environ.get(ENV_API_KEY)):
        raise CommandError(f"no API key: pass --api-key or set {ENV_API_KEY}")
    return resolve_api_key(api_key)
