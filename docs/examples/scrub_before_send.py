"""A ``before_send`` hook that scrubs personal data out of event metadata before it leaves the process.

The hook runs on the agent's spooler thread, never inside ``track_*``. It receives an ``Event`` whose ``metadata``
is a plain dict (or None) and returns the event, a changed copy, or None to drop it. What it returns is validated
like a ``track_*`` argument; if it raises, the event is dropped (never sent unscrubbed) and counted in
``stats().hook_errors``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from promptstream import Event, PromptStreamClient

PERSONAL_KEYS = {"email", "phone", "ip", "address"}
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return EMAIL.sub("[email]", value)
    if isinstance(value, dict):
        return {key: "[redacted]" if key in PERSONAL_KEYS else scrub_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_value(item) for item in value]
    return value


def scrub(event: Event) -> Event | None:
    """Drop internal traffic; redact personal keys and e-mail addresses anywhere in the metadata."""
    if event.label == "internal":
        return None  # never sent; counted in stats().filtered
    if event.metadata is None:
        return event
    return msgspec.structs.replace(event, metadata=scrub_value(event.metadata))


def make_client() -> PromptStreamClient:
    return PromptStreamClient(before_send=scrub)  # PROMPTSTREAM_API_KEY / PROMPTSTREAM_BASE_URL from the environment
