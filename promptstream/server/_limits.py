"""The limits of protocol v1 (docs/protocol.md, "Limits") and the checks the server applies to every event and every
request, whoever the client is. The shapes are checked by msgspec while decoding (_wire.py); what a type cannot say
(JSON-like values, nesting, calendar dates, sizes) is checked here."""

from __future__ import annotations

import datetime
import functools
import math
import re
from typing import Any

import msgspec

MAX_TEXT_LENGTH = 256  # ids, label, source, external_user_id (characters)
MAX_SCORE = 1e9  # |rating| and |engagement_score|
MAX_WEIGHT = 1e6  # a variant's weight: 0 < w <= MAX_WEIGHT
MAX_VARIANTS = 100
MAX_DEPTH = 16  # a scalar is depth 0, {"a": 1} is depth 1
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1  # what MessagePack can carry
MAX_METADATA_BYTES = 16 * 1024  # metadata once JSON-encoded
MAX_BATCH_EVENTS = 1000
MAX_OUTPUT_BYTES = 1024 * 1024  # a run's rendered output, UTF-8
MAX_IDEMPOTENCY_KEY_LENGTH = 256

# ASCII digits only: \d would also match other scripts' digits, and `$` would let a trailing newline through
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z", re.ASCII
)
_json_encode = msgspec.json.Encoder().encode


@functools.lru_cache(maxsize=4096)
def timestamp_problem(value: str) -> str | None:
    """Why ``value`` is not an RFC 3339 UTC timestamp as the protocol writes them, or None if it is one.

    Cached: events are stamped per millisecond, so a batch holds few distinct timestamps, and this check (a regex and
    a calendar date) was a visible share of ingestion in profiles."""
    match = _TIMESTAMP.fullmatch(value)
    if match is not None:
        try:
            year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
            datetime.datetime(year, month, day, hour, minute, second)
        except ValueError:
            match = None
    if match is None:
        return "timestamp must be RFC 3339 UTC with ASCII digits and a real date, e.g. 2026-01-01T00:00:00.000Z"
    return None


def json_like_problem(value: Any) -> str | None:
    """Why ``value`` is not a JSON-like value within the limits (types, nesting, int range, finite floats), or None.

    Iterative, so a value nested far beyond the limit costs no recursion.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]  # (value, number of containers around it)
    while stack:
        item, level = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if not MIN_INT <= item <= MAX_INT:
                return f"integers must be within -2**63 .. 2**64-1, got one with {item.bit_length()} bits"
        elif kind is float:
            if not math.isfinite(item):
                return f"numbers must be finite, got {item!r}"
        elif kind is dict or kind is list:
            if level >= MAX_DEPTH:
                return f"nests deeper than {MAX_DEPTH} levels"
            if kind is dict:
                for key in item:
                    if type(key) is not str:
                        return f"object keys must be strings, got {type(key).__name__}"
                children = item.values()
            else:
                children = item
            stack.extend((child, level + 1) for child in children)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            return "MessagePack bin values are not allowed (JSON-like values only)"
        elif isinstance(item, msgspec.msgpack.Ext):
            return "MessagePack ext values are not allowed (JSON-like values only)"
        elif isinstance(item, datetime.datetime):
            return "MessagePack timestamp values are not allowed (JSON-like values only)"
        else:
            return f"{kind.__name__} values are not allowed (JSON-like values only)"
    return None


def metadata_problem(metadata: dict[str, Any]) -> str | None:
    """Why an event's ``metadata`` breaks the limits, or None."""
    problem = json_like_problem(metadata)
    if problem is not None:
        return f"metadata: {problem}"
    size = len(_json_encode(metadata))
    if size > MAX_METADATA_BYTES:
        return f"metadata encodes to {size} bytes of JSON, more than {MAX_METADATA_BYTES}"
    return None


def weights_problem(weights: list[float]) -> str | None:
    """Why these variant weights cannot make an experiment, or None."""
    if not 1 <= len(weights) <= MAX_VARIANTS:
        return f"an experiment has 1 to {MAX_VARIANTS} variants, got {len(weights)}"
    for weight in weights:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            return f"variant weight must be a number, got {type(weight).__name__}"
        if not (math.isfinite(weight) and 0 < weight <= MAX_WEIGHT):
            return f"variant weight must be a finite number with 0 < weight <= {MAX_WEIGHT:g}, got {weight!r}"
    return None


def idempotency_key_problem(key: str) -> str | None:
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        return f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters"
    return None


def api_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a server API key (an empty key would match a bare ``Bearer`` header; one with spaces or
    control characters can never be sent), or None. The message never contains the key."""
    if not isinstance(key, str) or not key or not all("!" <= c <= "~" for c in key):
        return "must be non-empty printable ASCII without spaces or control characters"
    return None
