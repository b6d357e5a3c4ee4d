"""``run_prompt(..., fallback=...)``: a run made by the client when the server cannot be reached, so an offline tool
keeps working. Its ids follow docs/protocol.md ("Offline fallback runs"): the run id is ``offline:`` and a UUID, the
experiment id is ``offline``; the server stores their events later as offline events, in no experiment's results."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import ArgumentTypeError
from ._models import RunResponse

__all__ = [
    "FALLBACK_VARIANT",
    "OFFLINE_EXPERIMENT_ID",
    "OFFLINE_RUN_PREFIX",
    "Fallback",
    "check_fallback",
    "fallback_run",
]

OFFLINE_RUN_PREFIX = "offline:"
OFFLINE_EXPERIMENT_ID = "offline"
FALLBACK_VARIANT = "fallback"

Fallback = str | Callable[[dict[str, Any]], str]


def check_fallback(fallback: object) -> Fallback | None:
    """The ``fallback`` argument, checked before any I/O: None, a str, or a callable of the inputs."""
    if fallback is None or isinstance(fallback, str) or callable(fallback):
        return fallback
    raise ArgumentTypeError("fallback", f"must be a str or a callable of the inputs, got {type(fallback).__name__}")


def fallback_run(fallback: Fallback, inputs: Mapping[str, Any]) -> RunResponse:
    """The run ``run_prompt`` returns offline: ``is_fallback`` True, ``variant_assigned`` "fallback", the output
    ``fallback`` (or what it returns for a copy of the inputs), and ids the server accepts events for later."""
    output = fallback if isinstance(fallback, str) else fallback(dict(inputs))
    if not isinstance(output, str):
        raise ArgumentTypeError("fallback", f"must return a str, got {type(output).__name__}")
    return RunResponse(
        run_id=f"{OFFLINE_RUN_PREFIX}{uuid.uuid4()}",
        experiment_id=OFFLINE_EXPERIMENT_ID,
        variant_assigned=FALLBACK_VARIANT,
        output=output,
        is_fallback=True,
    )
