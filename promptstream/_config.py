"""Defaults and environment variables, in one place (docs/configuration.md lists them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import httpx
import msgspec

from ._errors import ConfigurationError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "AgentConfig",
    "env_flag",
    "resolve_api_key",
    "resolve_base_url",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8700"
# Explicit on every phase: a hung server must never hang the caller (or the atexit hook) for ever.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)

ENV_API_KEY = "PROMPTSTREAM_API_KEY"
ENV_BASE_URL = "PROMPTSTREAM_BASE_URL"
ENV_SPOOL_DIR = "PROMPTSTREAM_SPOOL_DIR"
ENV_DISABLED = "PROMPTSTREAM_DISABLED"


def resolve_api_key(api_key: str | None) -> str:
    key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
    if not key:
        raise ConfigurationError(f"no API key: pass api_key=... or set the {ENV_API_KEY} environment variable")
    if not isinstance(key, str) or key != key.strip() or any(c in key for c in "\r\n"):
        raise ConfigurationError("api_key must be a non-empty string without whitespace at its ends")
    return key


def resolve_base_url(base_url: str | None) -> str:
    url = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(f"base_url must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class AgentConfig(msgspec.Struct, frozen=True):
    """Every knob of the tracking agent, with its documented default (docs/configuration.md).

    The client's keyword arguments set the common ones; pass an ``AgentConfig`` as ``agent_config=`` for the rest.

    Example:
        ```python
        from promptstream import AgentConfig, PromptStreamClient

        client = PromptStreamClient(agent_config=AgentConfig(spool_dir=Path("/var/cache/myapp"), lease_seconds=120.0))
        ```
    """

    max_queue_size: int = 100_000
    """Events held in memory before the spooler writes them; beyond it new events are dropped and counted.
    Normally it holds ~50 ms of traffic; 100k events is ~2 s of an extreme burst and ~30 MiB at worst."""
    spool_interval: float = 0.05
    """Seconds between the spooler's writes: the window a crash (kill -9) can lose."""
    flush_interval: float = 0.5
    """Seconds the sender waits for more events before sending a partial batch."""
    batch_max_events: int = 1000
    """Events per request at most."""
    batch_max_bytes: int = 1024 * 1024
    """Uncompressed bytes per request at most."""
    gzip_threshold_bytes: int = 16 * 1024
    """Bodies at least this big are gzipped."""
    encoding: Literal["json", "msgpack"] = "json"
    """Wire encoding of event batches."""
    spool: bool = True
    """False keeps events in memory only: faster to start, but a crash or an outage past the queue loses them."""
    spool_dir: Path | None = None
    """Where the spool file lives; None is the user cache dir (platformdirs) or ``PROMPTSTREAM_SPOOL_DIR``."""
    max_spool_bytes: int = 128 * 1024 * 1024
    """Cap on the spool's pending payload bytes; beyond it new events are dropped and counted."""
    lease_seconds: float = 60.0
    """How long a claimed batch belongs to its process. A crashed process's claims are taken over sooner, as soon
    as its pid is seen dead."""
    shutdown_timeout: float = 2.0
    """Seconds ``close()`` and the exit hook spend delivering what is left."""
    max_backoff: float = 60.0
    """Longest wait between delivery attempts while the server fails."""
    auth_pause: float = 60.0
    """When the server rejects the API key (401/403), delivery pauses this long before trying again."""
    durable: bool = False
    """True makes SQLite fsync every spool write (``synchronous=FULL``): survives power loss, at a cost per write."""

    def __post_init__(self) -> None:
        positive = {
            "max_queue_size": self.max_queue_size,
            "spool_interval": self.spool_interval,
            "flush_interval": self.flush_interval,
            "batch_max_events": self.batch_max_events,
            "batch_max_bytes": self.batch_max_bytes,
            "max_spool_bytes": self.max_spool_bytes,
            "lease_seconds": self.lease_seconds,
            "max_backoff": self.max_backoff,
            "auth_pause": self.auth_pause,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigurationError(f"{name} must be > 0, got {value!r}")
        if self.shutdown_timeout < 0:
            raise ConfigurationError(f"shutdown_timeout must be >= 0, got {self.shutdown_timeout!r}")
        if self.encoding not in ("json", "msgpack"):
            raise ConfigurationError(f"encoding must be 'json' or 'msgpack', got {self.encoding!r}")
