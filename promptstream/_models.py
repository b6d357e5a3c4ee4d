"""Wire types of protocol v1 (docs/protocol.md) as msgspec Structs.

Responses from the server are decoded leniently (unknown fields are ignored, so a newer server does not break an
older SDK); what the SDK sends is built from these Structs, so its shape is exactly the protocol's.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "BatchRejection",
    "BatchResponse",
    "DeliveryStats",
    "ErrorBody",
    "ErrorEnvelope",
    "Event",
    "EventType",
    "RunRequest",
    "RunResponse",
]

EventType = Literal["click", "conversion", "feedback", "rating", "engagement"]


class RunRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/prompts/{prompt_id}/runs``."""

    inputs: dict[str, Any]
    external_user_id: str | None = None


class RunResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The result of ``run_prompt``: one execution of a prompt in an experiment.

    Example::

        resp = client.run_prompt("PROMPT_ID", {"text": "Hi"}, external_user_id="user_123")
        print(resp.variant_assigned, resp.output)
    """

    run_id: str
    experiment_id: str
    variant_assigned: str
    output: str


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One tracked event as it travels to ``POST /v1/events/batch``; fields a type does not use are omitted."""

    event_id: str
    type: EventType
    prompt_run_id: str
    experiment_id: str
    timestamp: str
    external_user_id: str | None = None
    label: str | None = None
    source: str | None = None
    metadata: msgspec.Raw | None = None  # encoded once, in the caller, when it was validated
    thumbs_up: bool | None = None
    rating: float | None = None
    engagement_score: float | None = None


class BatchRejection(msgspec.Struct, frozen=True, kw_only=True):
    """One event the server refused, by its position in the batch."""

    index: int
    event_id: str | None = None
    reason: str = ""


class BatchResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The server's answer to a batch: counts, and the events it rejected."""

    accepted: int
    duplicates: int = 0
    rejected: list[BatchRejection] = msgspec.field(default_factory=list)


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    type: str = "error"
    message: str = ""


class ErrorEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """``{"error": {"type": ..., "message": ...}}``, the body of every error response."""

    error: ErrorBody


class DeliveryStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of the tracking agent, from ``client.stats()``. Counts are since the client was created (in
    this process), except ``pending`` and ``dead_lettered``, which describe the spool as it is now.

    Example::

        stats = client.stats()
        if stats.dropped:
            print(f"{stats.dropped} events were dropped: {stats.last_error}")
    """

    tracked: int = 0
    """Events accepted by ``track_*``."""
    queued: int = 0
    """Events in memory, not yet in the spool."""
    spooled: int = 0
    """Events written to the spool (or the memory spool) by this process."""
    pending: int = 0
    """Events in the spool not yet acknowledged by the server (every process's, for a shared spool)."""
    sent: int = 0
    """Events acknowledged by the server (accepted or recognised as duplicates)."""
    duplicates: int = 0
    """Of ``sent``, events the server already had: a retried batch whose first answer was lost."""
    rejected: int = 0
    """Events the server refused; they are kept in the spool's dead-letter table."""
    dead_lettered: int = 0
    """Events in the spool's dead-letter table now."""
    dropped: int = 0
    """Events lost because the in-memory queue or the spool was full."""
    retries: int = 0
    """Delivery attempts that failed and were retried."""
    spool_path: str | None = None
    """The spool file, or None when the agent runs memory-only."""
    spool_quarantined: int = 0
    """Spool files found corrupt and moved aside (their events are lost to delivery)."""
    paused: bool = False
    """True while delivery is paused because the server refused the API key."""
    last_error: str | None = None
    """The most recent delivery problem, if any."""
