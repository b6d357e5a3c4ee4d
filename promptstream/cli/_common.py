"""What the commands share: the one-line failure, the API key, and the optional extras."""

from __future__ import annotations

import os
from typing import Any

from .._config import ENV_API_KEY, resolve_api_key

__all__ = ["CommandError", "api_key_or_fail", "server_module"]

SERVER_EXTRA_HINT = "the reference server needs its extra: pip install 'promptstream[server]'"


class CommandError(Exception):
    """A failure to report as one line with exit code 1."""


def server_module() -> Any:
    try:
        from promptstream import server
    except ImportError as exc:
        raise CommandError(f"{SERVER_EXTRA_HINT} ({exc})") from None
    return server


def api_key_or_fail(api_key: str | None) -> str:
    if not (api_key or os.environ.get(ENV_API_KEY)):
        raise CommandError(f"no API key: pass --api-key or set {ENV_API_KEY}")
    return resolve_api_key(api_key)
