"""Argument checks for the public API. They run in the caller's thread, before anything is queued or sent, and
raise InvalidArgumentError / ArgumentTypeError naming the argument. Limits are documented in docs/configuration.md."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from ._errors import ArgumentTypeError, InvalidArgumentError

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_LABEL_LENGTH",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "check_bool",
    "check_id",
    "check_inputs",
    "check_label",
    "check_number",
    "check_optional_id",
    "check_optional_label",
    "encode_metadata",
]

MAX_ID_LENGTH = 256
MAX_LABEL_LENGTH = 256
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 16

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
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(name, f"must be a real number (int or float), got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidArgumentError(name, f"must be finite, got {value!r}")
    return number


def _walk(name: str, value: object, depth: int) -> None:
    # JSON has no NaN and no non-str keys: msgspec would silently send null / stringify them, so refuse them here.
    if depth > MAX_METADATA_DEPTH:
        raise InvalidArgumentError(name, f"nests deeper than {MAX_METADATA_DEPTH} levels (or contains a cycle)")
    if isinstance(value, dict):
        _walk_items(name, value, depth)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(name, item, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(name, f"contains a non-finite number {value!r}")


def _walk_items(name: str, mapping: dict[Any, Any], depth: int) -> None:
    for key, item in mapping.items():
        if type(key) is not str:
            raise ArgumentTypeError(name, f"keys must be str, got {type(key).__name__} key {key!r}")
        kind = type(item)
        # flat scalars are the common case: no call per value for them
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if item - item != 0.0:  # inf - inf and nan - nan are nan
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
    if not isinstance(value, dict):
        raise ArgumentTypeError("inputs", f"must be a dict with str keys, got {type(value).__name__}")
    _walk("inputs", value, 1)
    try:
        _json_encode(value)
    except (TypeError, UnicodeEncodeError, ValueError, OverflowError, RecursionError) as exc:
        raise InvalidArgumentError("inputs", f"cannot be encoded as JSON: {exc}") from None
    return value
