"""Argument checks for the public API. They run in the caller's thread, before anything is queued or sent, and
raise InvalidArgumentError / ArgumentTypeError naming the argument. Limits are documented in docs/configuration.md."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec

from ._config import MAX_RETRIES, check_timeout_option
from ._errors import ArgumentTypeError, ConfigurationError, InvalidArgumentError

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_LABEL_LENGTH",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_NUMBER",
    "check_bool",
    "check_call_retries",
    "check_call_timeout",
    "check_extra_headers",
    "check_id",
    "check_idempotency_key",
    "check_inputs",
    "check_label",
    "check_number",
    "check_optional_id",
    "check_optional_label",
    "check_timeout",
    "check_trace_context",
    "encode_metadata",
    "header_problem",
]

MAX_ID_LENGTH = 256
MAX_LABEL_LENGTH = 256
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 16
# docs/protocol.md's limits: numbers on the wire stay far from float overflow (sums and means of millions of them are
# exact enough and finite), and every int fits MessagePack's int64/uint64 so either encoding carries every event.
MAX_NUMBER = 1e9
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1
MAX_IDEMPOTENCY_KEY_LENGTH = 256

_json_encode = msgspec.json.Encoder().encode


def _check_text(name: str, value: str, max_length: int) -> str:
    if not value:
        raise InvalidArgumentError(name, "must not be empty")
    if len(value) > max_length:
        raise InvalidArgumentError(name, f"must be at most {max_length} characters, got {len(value)}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError(name, "is not valid Unicode (lone surrogate)") from None
    return value


def check_id(name: str, value: object) -> str:
    # The common case in one expression: these run on every track_* call.
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH and value.isascii():
        return value
    if type(value) is not str:
        raise ArgumentTypeError(name, f"must be a str, got {type(value).__name__}")
    return _check_text(name, value, MAX_ID_LENGTH)


def check_optional_id(name: str, value: object) -> str | None:
    return None if value is None else check_id(name, value)


def check_label(name: str, value: object) -> str:
    if type(value) is str and 0 < len(value) <= MAX_LABEL_LENGTH and value.isascii():
        return value
    if not isinstance(value, str):
        raise ArgumentTypeError(name, f"must be a str, got {type(value).__name__}")
    return _check_text(name, str(value), MAX_LABEL_LENGTH)


def check_optional_label(name: str, value: object) -> str | None:
    return None if value is None else check_label(name, value)


def check_bool(name: str, value: object) -> bool:
    if type(value) is not bool:
        raise ArgumentTypeError(name, f"must be a bool (True or False), got {type(value).__name__}")
    return value


def check_number(name: str, value: object) -> float:
    # ints are compared before float(): float(10**400) raises OverflowError, and the wire carries a float anyway
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(name, f"must be a real number (int or float), got {type(value).__name__}")
    if isinstance(value, int):
        if not -MAX_NUMBER <= value <= MAX_NUMBER:
            raise InvalidArgumentError(name, f"must be within -1e9 .. 1e9, got an int of {value.bit_length()} bits")
        return float(value)
    number = float(value)
    if not math.isfinite(number):
        raise InvalidArgumentError(name, f"must be finite, got {value!r}")
    if not -MAX_NUMBER <= number <= MAX_NUMBER:
        raise InvalidArgumentError(name, f"must be within -1e9 .. 1e9, got {value!r}")
    return number


def _check_scalar(name: str, value: object) -> None:
    """A leaf of metadata or inputs: JSON's scalars only, ints that MessagePack can carry, finite floats."""
    if value is None or isinstance(value, (str, bool)):
        return
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise InvalidArgumentError(
                name,
                f"contains an int outside -2**63 .. 2**64-1 ({value.bit_length()} bits): MessagePack cannot carry it",
            )
        return
    if isinstance(value, float):
        if value - value != 0.0:  # inf - inf and nan - nan are nan
            raise InvalidArgumentError(name, f"contains a non-finite number {value!r}")
        return
    raise ArgumentTypeError(
        name, f"may hold only dict, list, str, int, float, bool and None, got {type(value).__name__}"
    )


def _walk(name: str, value: object, depth: int) -> None:
    """``value`` sits at nesting ``depth`` (the top-level dict is 1). JSON has no NaN and no non-str keys: msgspec
    would silently send null / stringify them, so they are refused here, as is any type JSON has no word for."""
    if isinstance(value, dict):
        if depth > MAX_METADATA_DEPTH:
            raise InvalidArgumentError(name, f"nests deeper than {MAX_METADATA_DEPTH} levels (or contains a cycle)")
        _walk_items(name, value, depth)
    elif isinstance(value, (list, tuple)):
        if depth > MAX_METADATA_DEPTH:
            raise InvalidArgumentError(name, f"nests deeper than {MAX_METADATA_DEPTH} levels (or contains a cycle)")
        for item in value:
            _walk(name, item, depth + 1)
    else:
        _check_scalar(name, value)


def _walk_items(name: str, mapping: dict[Any, Any], depth: int) -> None:
    for key, item in mapping.items():
        if type(key) is not str and not isinstance(key, str):
            raise ArgumentTypeError(name, f"keys must be str, got {type(key).__name__} key {key!r:.40}")
        kind = type(item)
        # flat scalars are the common case: no call per value for them
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if not MIN_INT <= item <= MAX_INT:
                _check_scalar(name, item)
            continue
        if kind is float:
            if item - item != 0.0:
                raise InvalidArgumentError(name, f"contains a non-finite number {item!r}")
            continue
        _walk(name, item, depth + 1)


def encode_metadata(value: object) -> msgspec.Raw | None:
    """Validate metadata and encode it once, here, so the background never meets a value it cannot send."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ArgumentTypeError("metadata", f"must be a dict with str keys, got {type(value).__name__}")
    _walk_items("metadata", value, 1)
    try:
        encoded = _json_encode(value)
    except (TypeError, UnicodeEncodeError, ValueError, OverflowError, RecursionError) as exc:
        raise InvalidArgumentError("metadata", f"cannot be encoded as JSON: {exc}") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise InvalidArgumentError(
            "metadata", f"encodes to {len(encoded)} bytes, more than the limit of {MAX_METADATA_BYTES}"
        )
    return msgspec.Raw(encoded)


def check_inputs(value: object) -> dict[str, Any]:
    """Run inputs: the rules of metadata (JSON-like, depth 16, MessagePack ints, finite floats), without its size
    cap (the server's body limit applies)."""
    if not isinstance(value, dict):
        raise ArgumentTypeError("inputs", f"must be a dict with str keys, got {type(value).__name__}")
    _walk("inputs", value, 1)
    try:
        _json_encode(value)
    except (TypeError, UnicodeEncodeError, ValueError, OverflowError, RecursionError) as exc:
        raise InvalidArgumentError("inputs", f"cannot be encoded as JSON: {exc}") from None
    return value


_HEX = frozenset("0123456789abcdef")


def _hex_id_problem(value: object, digits: int) -> str | None:
    if type(value) is not str:
        return f"must be a str of {digits} lowercase hex digits, got {type(value).__name__}"
    if len(value) != digits or not _HEX.issuperset(value):
        return f"must be {digits} lowercase hex digits, got {value!r:.40}"
    if value.count("0") == digits:
        return "must not be all zeros (W3C Trace Context: an invalid id)"
    return None


def check_trace_context(trace_id: object, span_id: object) -> tuple[str, str] | tuple[None, None]:
    """An event's trace context (docs/protocol.md): both None, or a W3C trace id (32 lowercase hex digits) and span
    id (16), neither all zeros."""
    if trace_id is None and span_id is None:
        return None, None
    for name, value, digits in (("trace_id", trace_id, 32), ("span_id", span_id, 16)):
        if value is None:
            raise InvalidArgumentError(
                name, "must be given together with " + ("span_id" if digits == 32 else "trace_id")
            )
        problem = _hex_id_problem(value, digits)
        if problem is not None:
            error = ArgumentTypeError if type(value) is not str else InvalidArgumentError
            raise error(name, problem)
    return trace_id, span_id  # type: ignore[return-value]


def check_idempotency_key(value: object) -> str:
    """Printable ASCII (space to ``~``), 1..256 characters, without a space at either end (HTTP strips those, so the
    server would see another key)."""
    if type(value) is not str:
        raise ArgumentTypeError("idempotency_key", f"must be a str, got {type(value).__name__}")
    if not 0 < len(value) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidArgumentError(
            "idempotency_key", f"must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters, got {len(value)}"
        )
    if not (value.isascii() and value.isprintable()):
        raise InvalidArgumentError("idempotency_key", "must be printable ASCII (space to '~')")
    if value[0] == " " or value[-1] == " ":
        raise InvalidArgumentError("idempotency_key", "must not start or end with a space")
    return value


# Waits longer than this are capped: threading refuses timeouts past TIMEOUT_MAX, and 115 days is "for ever".
MAX_WAIT_SECONDS = 1e7


def check_timeout(name: str, value: object) -> float | None:
    """A wait in seconds given to ``flush``/``close``: None (the default) or a real number >= 0, capped at 1e7."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(name, f"must be a number of seconds or None, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf if value > 0 else -math.inf
    if math.isnan(seconds) or seconds < 0:
        raise InvalidArgumentError(name, f"must be a number of seconds >= 0, got {value!r:.40}")
    return min(seconds, MAX_WAIT_SECONDS)


# -- per-call request options (run_prompt(..., timeout=, max_retries=, extra_headers=)) ---------------------------

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Headers the SDK sets from its own options: one way to configure each.
_RESERVED_HEADERS = {"authorization": "api_key", "idempotency-key": "idempotency_key", "content-length": "the body"}
MAX_HEADER_VALUE_LENGTH = 8192


def header_problem(headers: object) -> str | None:
    """Why ``headers`` cannot be sent as extra HTTP headers, or None: a mapping of token names to visible-ASCII
    values (spaces inside allowed), none of them a header the SDK sets from its own options."""
    if not isinstance(headers, Mapping):
        return f"must be a mapping of header names to str values, got {type(headers).__name__}"
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not set(name) <= _TOKEN_CHARS:
            return f"header name {name!r:.40} is not an HTTP token"
        if name.lower() in _RESERVED_HEADERS:
            return f"{name} is set by the SDK from {_RESERVED_HEADERS[name.lower()]}; pass that instead"
        if not isinstance(value, str):
            return f"header {name}: the value must be a str, got {type(value).__name__}"
        if len(value) > MAX_HEADER_VALUE_LENGTH or not all(" " <= char <= "~" for char in value):
            return f"header {name}: the value must be printable ASCII, at most {MAX_HEADER_VALUE_LENGTH} characters"
        if value != value.strip(" "):
            return f"header {name}: the value must not start or end with a space"
    return None


def check_extra_headers(value: object) -> dict[str, str]:
    if value is None:
        return {}
    problem = header_problem(value)
    if problem is not None:
        error = ArgumentTypeError if not isinstance(value, Mapping) else InvalidArgumentError
        raise error("extra_headers", problem)
    checked: dict[str, str] = dict(value)  # type: ignore[call-overload]
    return checked


def check_call_timeout(value: object) -> httpx.Timeout | None:
    """A per-call ``timeout=``: None (the client's), seconds, or an ``httpx.Timeout``, as at construction."""
    if value is None:
        return None
    if not isinstance(value, (int, float, httpx.Timeout)) or isinstance(value, bool):
        raise ArgumentTypeError("timeout", f"must be seconds or an httpx.Timeout, got {type(value).__name__}")
    try:
        return check_timeout_option(value)
    except ConfigurationError as exc:
        raise InvalidArgumentError("timeout", str(exc).removeprefix("timeout: ").removeprefix("timeout ")) from None


def check_call_retries(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError("max_retries", f"must be an int in 0..{MAX_RETRIES}, got {type(value).__name__}")
    if not 0 <= value <= MAX_RETRIES:
        raise InvalidArgumentError("max_retries", f"must be an int in 0..{MAX_RETRIES}, got {value}")
    return int(value)
