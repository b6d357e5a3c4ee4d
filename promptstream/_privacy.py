"""Privacy controls: keyed hashing of user ids, the ``before_send`` hook, and the plain-HTTP warning.

- ``hash_user_id(value, salt)`` is HMAC-SHA256 keyed with your salt, as 64 hex digits. The same user always maps to
  the same id (so per-user rates and sticky assignment still work), and without the salt nobody can test guesses
  (a plain hash of an e-mail address can be reversed by hashing candidate addresses).
- With ``PromptStreamClient(hash_user_ids=salt)`` every ``external_user_id`` given to ``run_prompt`` and
  ``track_*`` is replaced by its hash before it leaves the process; nothing else derived from it is sent or stored.
- ``before_send(event) -> event | None`` runs on the agent's background thread, so a slow scrubber never slows
  ``track_*``. The event's ``metadata`` is a plain dict (or None); the hook returns the event, a changed copy
  (``msgspec.structs.replace``), or None. Metadata it returns is validated like a ``track_*`` argument.
  Returning None drops the event (counted as ``filtered``); an exception or a result that is not an ``Event``
  drops it too (counted as ``hook_errors`` and reported to ``on_error``): a scrubber that fails must
  not let the unscrubbed event through.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Callable

import httpx
import msgspec

from ._errors import ConfigurationError
from ._models import Event, decode_event
from ._validation import check_trace_context, encode_metadata

__all__ = [
    "BeforeSend",
    "HookOutcome",
    "apply_before_send",
    "hash_user_id",
    "user_id_hasher",
    "warn_if_key_goes_in_clear",
]

logger = logging.getLogger("promptstream")

BeforeSend = Callable[[Event], "Event | None"]
_encode_event = msgspec.json.Encoder().encode


class HookOutcome(msgspec.Struct):
    kept: list[bytes]
    filtered: int = 0
    errors: list[str] = msgspec.field(default_factory=list)


def apply_before_send(hook: BeforeSend, payloads: list[bytes]) -> HookOutcome:
    """Run ``hook`` on each encoded event; what it keeps comes back encoded. Never raises (see the module doc)."""
    outcome = HookOutcome(kept=[])
    for payload in payloads:
        try:
            result = hook(decode_event(payload))
            if result is None:
                outcome.filtered += 1
                continue
            if not isinstance(result, Event):
                raise TypeError(f"before_send must return an Event or None, got {type(result).__name__}")
            if not isinstance(result.metadata, msgspec.Raw):
                # what the hook made of the metadata is checked like a track_* argument (limits, JSON-only values)
                result = msgspec.structs.replace(result, metadata=encode_metadata(result.metadata))
            check_trace_context(result.trace_id, result.span_id)  # a hook may set or change them too
            outcome.kept.append(_encode_event(result))
        except Exception as exc:  # the hook is user code: it must never stop the agent or reach the host
            outcome.errors.append(f"before_send failed: {type(exc).__name__}: {exc}")
    return outcome


def hash_user_id(value: str, salt: str | bytes) -> str:
    """HMAC-SHA256 of ``value`` keyed with ``salt``, as 64 lowercase hex digits.

    Example:
        ```python
        from promptstream import hash_user_id

        hash_user_id("ada@example.com", salt=os.environ["PROMPTSTREAM_USER_SALT"])  # '3f1c…' (64 hex digits)
        ```
    """
    if not isinstance(value, str):
        raise ConfigurationError(f"hash_user_id: value must be a str, got {type(value).__name__}")
    key = salt.encode() if isinstance(salt, str) else salt
    if not isinstance(key, bytes) or len(key) < 16:
        raise ConfigurationError(
            "the user-id salt must be a str or bytes of at least 16 bytes (a short one is guessable)"
        )
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def user_id_hasher(salt: str | bytes) -> Callable[[str], str]:
    """``hash_user_id`` bound to ``salt``, memoised: users repeat, and an HMAC costs ~1 µs in the caller's thread."""
    hash_user_id("", salt)  # validates the salt now, at construction

    @functools.lru_cache(maxsize=65_536)
    def hashed(value: str) -> str:
        return hash_user_id(value, salt)

    return hashed


_warned_hosts: set[str] = set()  # one warning per host and process, however many clients


def warn_if_key_goes_in_clear(base_url: str) -> None:
    """Warn once when the API key would travel over plain HTTP to a host that is not this machine."""
    from ._config import redact_url

    url = httpx.URL(base_url)
    if url.scheme != "http" or url.host in _warned_hosts:
        return
    host = url.host
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost" or host.endswith(".localhost")
    if not local:
        _warned_hosts.add(host)
        logger.warning(
            "promptstream: base_url %s is plain http to a remote host: the API key would cross the network "
            "unencrypted; use https",
            redact_url(base_url),
        )
