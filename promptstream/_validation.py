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
    if type(value) is not str:
        raise ArgumentTypeError(name, f"must be a str, got {type(value).__name__}")
    return _check_text(name, value, MAX_ID_LENGTH)


def check_optional_id(name: str, value: object) -> str | None:
    return None if value is None else check_id(name, value)


def check_label(name: str, value: object) -> str:
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
    kind = type(value)
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                raise ArgumentTypeError(name, f"keys must be str, got {type(key).__name__} key {key!r}")
            _walk(name, item, depth + 1)
    elif kind is list or kind is tuple:
        for item in value:  # type: ignore[attr-defined]
            _walk(name, item, depth + 1)
    elif kind is float and not math.isfinite(value):  # type: ignore[arg-type]
        raise InvalidArgumentError(name, f"contains a non-finite number {value!r}")


def encode_metadata(value: object) -> msgspec.Raw | None:
    """Validate metadata and encode it once, here, so the background never meets a value it cannot send."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ArgumentTypeError("metadata", f"must be a dict with str keys, got {type(value).__name__}")
    _walk("metadata", value, 1)
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
