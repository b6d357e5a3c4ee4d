"""What the commands share: the one-line failure, the optional extras, and a small client for the admin endpoints."""

from __future__ import annotations

import argparse
import os
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec

from .._config import DEFAULT_TIMEOUT, ENV_API_KEY, resolve_api_key, resolve_base_url
from .._errors import APIConnectionError
from .._http import HttpTransport, error_from_response

__all__ = [
    "AdminAPI",
    "CommandError",
    "admin_api",
    "api_key_or_fail",
    "display_url",
    "path_part",
    "server_module",
    "unreachable",
]

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


class AdminAPI:
    """The protocol's prompt and experiment endpoints (docs/protocol.md), for the CLI. Errors are the SDK's."""

    def __init__(self, base_url: str | None, api_key: str | None) -> None:
        self.base_url = resolve_base_url(base_url)
        self._api_key = api_key_or_fail(api_key)
        self._transport = HttpTransport(self.base_url, self._api_key, DEFAULT_TIMEOUT)

    def get(self, path: str) -> Any:
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        content = None if body is None else msgspec.json.encode(body)
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            response = self._transport.request(method, path, content=content, headers=headers)
        except APIConnectionError as exc:  # timeouts too
            raise unreachable(self.base_url, exc.message, self._api_key) from None
        if response.status_code >= 400:
            raise error_from_response(response)
        return msgspec.json.decode(response.content)


def api_key_or_fail(api_key: str | None) -> str:
    if not (api_key or os.environ.get(ENV_API_KEY)):
        raise CommandError(f"no API key: pass --api-key or set {ENV_API_KEY}")
    return resolve_api_key(api_key)


def admin_api(args: argparse.Namespace) -> AdminAPI:
    return AdminAPI(args.base_url, args.api_key)


def path_part(value: str) -> str:
    return quote(value, safe="")
