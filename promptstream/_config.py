"""Defaults and environment variables, in one place (docs/configuration.md lists them)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

import httpx
import msgspec

from ._errors import ConfigurationError

__all__ = [
    "AGENT_KEYWORDS",
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "AgentConfig",
    "agent_config_from",
    "check_bool_option",
    "check_callable_option",
    "check_max_retries",
    "check_timeout_option",
    "env_flag",
    "redact_url",
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


# API keys travel in an HTTP header: visible ASCII only. A control character would make httpx raise with the header
# (and so the key) in its message; a non-ASCII one cannot be encoded at all.
MAX_API_KEY_LENGTH = 4096
# Seconds: no single HTTP phase may wait longer than an hour, and none may be unbounded.
MAX_TIMEOUT = 3600.0
MAX_RETRIES = 10


def resolve_api_key(api_key: object) -> str:
    """The key from ``api_key`` or ``$PROMPTSTREAM_API_KEY``, checked. Errors never contain the key."""
    key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
    if key is None or key == "":
        raise ConfigurationError(f"no API key: pass api_key=... or set the {ENV_API_KEY} environment variable")
    if not isinstance(key, str):
        raise ConfigurationError(f"api_key must be a str, got {type(key).__name__}")
    if len(key) > MAX_API_KEY_LENGTH:
        raise ConfigurationError(f"api_key must be at most {MAX_API_KEY_LENGTH} characters, got {len(key)}")
    if not all("!" <= char <= "~" for char in key):
        raise ConfigurationError(
            "api_key must be printable ASCII without spaces or control characters ('!' to '~'); "
            "it contains another character (the key is not shown)"
        )
    return key


def redact_url(url: object) -> str:
    """``url`` as it may appear in a log, an error or a CLI message: a ``user:password@`` becomes ``***@``, and a
    query or fragment (where a token may hide) becomes ``?***`` / ``#***``. The one place URLs are made printable."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    authority_end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            authority_end = min(authority_end, index)
    authority, tail = rest[:authority_end], rest[authority_end:]
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    path, query_sep, _ = tail.partition("?")
    path, fragment_sep, _ = path.partition("#")
    if query_sep:
        path += "?***"
    elif fragment_sep:
        path += "#***"
    return f"{scheme}://{authority}{path}"


def resolve_base_url(base_url: object) -> str:
    """The server's URL from ``base_url``, ``$PROMPTSTREAM_BASE_URL`` or the default, checked and without any
    ``user:password@`` (the API key authenticates; httpx would send the userinfo as Basic auth instead of it)."""
    url = base_url if base_url is not None else (os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL)
    if not isinstance(url, str):
        raise ConfigurationError(
            f"base_url must be a str such as 'https://promptstream.example.com', got {type(url).__name__}"
        )
    try:
        parsed = httpx.URL(url)
        host = parsed.host
        port = parsed.port
    except Exception as exc:  # httpx raises InvalidURL, but also TypeError/ValueError for some inputs
        raise ConfigurationError(f"base_url is not a valid URL ({type(exc).__name__}): {redact_url(url)!r}") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise ConfigurationError(f"base_url must be an http:// or https:// URL with a host, got {redact_url(url)!r}")
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(f"base_url's port must be 1 to 65535, got {redact_url(url)!r}")
    if parsed.query or parsed.fragment:
        raise ConfigurationError(f"base_url must not have a query or fragment, got {redact_url(url)!r}")
    if parsed.userinfo:
        import logging

        logging.getLogger("promptstream").warning(
            "promptstream: base_url %s carries user:password@ credentials; they are not sent (the API key "
            "authenticates) and never logged",
            redact_url(url),
        )
        return str(parsed.copy_with(username=None, password=None)).rstrip("/")
    # as given, not re-serialised by httpx: the spool's file name is derived from this string, and an upgrade must
    # find the spool an older version wrote
    return url.rstrip("/")


def check_timeout_option(value: object) -> httpx.Timeout:
    """``timeout=``: seconds for every phase, or an ``httpx.Timeout`` whose every phase is set; each in
    (0, 3600]. A phase of None (no timeout) is refused: a hung server must never hang the caller."""
    if isinstance(value, httpx.Timeout):
        phases = {"connect": value.connect, "read": value.read, "write": value.write, "pool": value.pool}
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        phases = {"timeout": value}
    else:
        raise ConfigurationError(
            f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}] or an httpx.Timeout, "
            f"got {type(value).__name__}"
        )
    for phase, seconds in phases.items():
        if seconds is None or not 0 < seconds <= MAX_TIMEOUT:
            raise ConfigurationError(
                f"timeout: every phase must be in (0, {MAX_TIMEOUT:g}] seconds, got {phase}={seconds!r}"
            )
    return value if isinstance(value, httpx.Timeout) else httpx.Timeout(float(value))


def check_max_retries(value: object) -> int:
    return check_int_option("max_retries", value, 0, MAX_RETRIES)


def check_int_option(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int in {low}..{high}, got {type(value).__name__}")
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be an int in {low}..{high}, got {value}")
    return int(value)


def check_seconds_option(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number of seconds in {low:g}..{high:g}, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not low <= seconds <= high:  # also refuses NaN and infinities
        raise ConfigurationError(f"{name} must be a number of seconds in {low:g}..{high:g}, got {value!r:.40}")
    return seconds


def check_bool_option(name: str, value: object) -> bool:
    if type(value) is not bool:
        raise ConfigurationError(f"{name} must be True or False, got {type(value).__name__}")
    return value


def check_callable_option(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name} must be callable or None, got {type(value).__name__}")


def check_spool_dir(value: object) -> Path | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ConfigurationError(f"spool_dir must be a str or os.PathLike path, got {type(value).__name__}")
    if not value or "\x00" in value:
        raise ConfigurationError("spool_dir must be a non-empty path without NUL characters")
    return Path(value)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# Every numeric AgentConfig field with its documented range (docs/configuration.md): (kind, low, high).
_AGENT_RANGES: dict[str, tuple[str, float, float]] = {
    "max_queue_size": ("int", 100, 10_000_000),
    "spool_interval": ("seconds", 0.001, 60.0),
    "flush_interval": ("seconds", 0.001, 300.0),
    "batch_max_events": ("int", 1, 1000),
    "batch_max_bytes": ("int", 64 * 1024, 16 * 1024 * 1024),
    "gzip_threshold_bytes": ("int", 0, 2**31 - 1),
    "max_spool_bytes": ("int", 16 * 1024, 2**40),
    "lease_seconds": ("seconds", 0.1, 86_400.0),
    "shutdown_timeout": ("seconds", 0.0, 3600.0),
    "max_backoff": ("seconds", 0.01, 3600.0),
    "auth_pause": ("seconds", 0.01, 3600.0),
}
AGENT_KEYWORDS = (
    "spool",
    "spool_dir",
    "max_spool_bytes",
    "max_queue_size",
    "flush_interval",
    "batch_max_events",
    "shutdown_timeout",
    "encoding",
    "durable",
)


def agent_config_from(agent_config: object, keywords: dict[str, object]) -> AgentConfig:
    """The one AgentConfig of a client: ``agent_config`` (or the defaults) with every agent keyword that was given
    (not None) laid over it. Each value is checked by AgentConfig itself."""
    if agent_config is not None and not isinstance(agent_config, AgentConfig):
        raise ConfigurationError(f"agent_config must be an AgentConfig or None, got {type(agent_config).__name__}")
    given = {name: value for name, value in keywords.items() if value is not None}
    base = agent_config if agent_config is not None else AgentConfig()
    if not given:
        return base
    fields = msgspec.structs.asdict(base)
    fields.update(given)
    return AgentConfig(**fields)


class AgentConfig(msgspec.Struct, frozen=True):
    """Every knob of the tracking agent, with its documented default (docs/configuration.md).

    The client's keyword arguments set the common ones; pass an ``AgentConfig`` as ``agent_config=`` for the rest.
    When both are given, the keywords given explicitly (not None) override the matching fields of ``agent_config``.
    Every field is checked here, against the range docs/configuration.md gives, with a ``ConfigurationError``.

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
    """When the server answers what retrying will not heal (a refused API key, a ``base_url`` that is not a
    PromptStream server: any 4xx but 400, 408, 413, 422, 425 and 429), delivery pauses this long before trying again."""
    durable: bool = False
    """True makes SQLite fsync every spool write (``synchronous=FULL``): survives power loss, at a cost per write."""

    def __post_init__(self) -> None:
        # Every field checked here, once: the agent's threads never meet a value that would stop them.
        for name, (kind, low, high) in _AGENT_RANGES.items():
            value = getattr(self, name)
            if kind == "int":
                checked: float = check_int_option(name, value, int(low), int(high))
            else:
                checked = check_seconds_option(name, value, low, high)
            if checked is not value:
                msgspec.structs.force_setattr(self, name, checked)
        if not isinstance(self.encoding, str) or self.encoding not in ("json", "msgpack"):
            raise ConfigurationError(f"encoding must be 'json' or 'msgpack', got {self.encoding!r:.40}")
        check_bool_option("spool", self.spool)
        check_bool_option("durable", self.durable)
        spool_dir = check_spool_dir(self.spool_dir)
        if spool_dir is not self.spool_dir:
            msgspec.structs.force_setattr(self, "spool_dir", spool_dir)
